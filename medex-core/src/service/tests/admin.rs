//! Administration: configuration changes.

use super::*;

#[test]
fn a_configuration_change_from_a_stale_read_conflicts_instead_of_undoing_another() {
    block_on(async {
        let w = World::in_memory(12).await;
        let read_by_one = w.medex.system_config(&w.admin).unwrap();
        let read_by_other = w.medex.system_config(&w.admin).unwrap();
        let mut first = (*read_by_one).clone();
        first.road_factor = 1.5;
        w.medex
            .update_system_config_from(&w.admin, &read_by_one, first)
            .await
            .unwrap();
        let mut second = (*read_by_other).clone();
        second.vehicle_speeds.bike = 18.0;
        assert!(matches!(
            w.medex
                .update_system_config_from(&w.admin, &read_by_other, second)
                .await,
            Err(Error::Conflict(Conflict::ConcurrentUpdate))
        ));
        // The first change stands, in force and stored; the second is retried from a fresh read.
        let config = w.medex.config();
        assert_eq!(
            (config.road_factor, config.vehicle_speeds.bike),
            (1.5, 15.0)
        );
        let stored = w.medex.store().system_config().await.unwrap().unwrap();
        assert_eq!((&stored.config, stored.version), (&*config, 1));
        let fresh = w.medex.system_config(&w.admin).unwrap();
        let mut second = (*fresh).clone();
        second.vehicle_speeds.bike = 18.0;
        let kept = w
            .medex
            .update_system_config_from(&w.admin, &fresh, second)
            .await
            .unwrap();
        assert_eq!((kept.road_factor, kept.vehicle_speeds.bike), (1.5, 18.0));
        // Only admins change it.
        assert!(matches!(
            w.medex
                .update_system_config_from(&w.vendor_a, &kept, (*kept).clone())
                .await,
            Err(Error::Forbidden)
        ));
    });
}
