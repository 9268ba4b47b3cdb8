//! Travel tables from the operator's own OSRM server (`MEDEX_OSRM_URL`): core's `Router` port
//! over OSRM's table service (`GET /table/v1/driving/{lon,lat;…}?annotations=duration,distance`).
//!
//! Distances come from the streets; minutes are those distances at the configured speed of the
//! driver's vehicle (OSRM's durations are a car's, and a bike is not a car), so only the road
//! factor is replaced by real roads. Each request has a timeout; when OSRM does not answer, or
//! answers anything but a well-formed table of the right size, the table is computed on great
//! circles (the default model) and a warning is logged, so a run is always sequenced.

use std::time::Duration;

use async_trait::async_trait;
use medex_core::model::Coordinates;
use medex_core::router::{GreatCircle, Profile, Router};
use medex_core::sequencing::TravelTable;
use serde::Deserialize;

/// The longest table asked for at once: a run of 30 drop-offs with its start and pharmacy, with
/// room to spare; beyond, great circles.
const MAX_POINTS: usize = 100;

/// The largest OSRM answer read (a 100 × 100 table of two annotations is ~200 KB of JSON).
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// Why an OSRM answer was not used (logged, then great circles).
#[derive(Debug, thiserror::Error)]
enum OsrmError {
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answer larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("answer is not a table: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct TableAnswer {
    code: String,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f64>>>>,
}

/// The `Router` on an OSRM server.
#[derive(Debug, Clone)]
pub struct OsrmRouter {
    base: String,
    client: reqwest::Client,
}

impl OsrmRouter {
    /// A router asking the OSRM server at `base` (e.g. `http://osrm:5000`), each request
    /// within `timeout` (connecting included).
    pub fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }

    async fn ask(
        &self,
        points: &[Coordinates],
        profile: Profile,
    ) -> Result<TravelTable, OsrmError> {
        let coordinates: Vec<String> = points
            .iter()
            .map(|p| format!("{:.6},{:.6}", p.longitude(), p.latitude()))
            .collect();
        let url = format!(
            "{}/table/v1/driving/{}?annotations=distance",
            self.base,
            coordinates.join(";")
        );
        let mut answer = self.client.get(url).send().await?;
        if !answer.status().is_success() {
            return Err(OsrmError::Status(answer.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(OsrmError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let table: TableAnswer =
            serde_json::from_slice(&body).map_err(|e| OsrmError::Malformed(e.to_string()))?;
        if table.code != "Ok" {
            return Err(OsrmError::Malformed(format!("code {}", table.code)));
        }
        let rows = table
            .distances
            .ok_or_else(|| OsrmError::Malformed("no distances".into()))?;
        let n = points.len();
        if rows.len() != n || rows.iter().any(|row| row.len() != n) {
            return Err(OsrmError::Malformed(format!(
                "{} rows for {n} points",
                rows.len()
            )));
        }
        let mut km = Vec::with_capacity(n * n);
        for row in &rows {
            for cell in row {
                // OSRM answers null where no route exists: such a leg is not a table we trust.
                match cell {
                    Some(metres) if metres.is_finite() && *metres >= 0.0 => {
                        km.push(metres / 1000.0)
                    }
                    _ => return Err(OsrmError::Malformed("a leg without a route".into())),
                }
            }
        }
        let minutes = km
            .iter()
            .map(|k| {
                if profile.speed_kmh > 0.0 {
                    k / profile.speed_kmh * 60.0
                } else {
                    0.0
                }
            })
            .collect();
        TravelTable::new(n, minutes, km).ok_or_else(|| OsrmError::Malformed("bad values".into()))
    }
}

#[async_trait]
impl Router for OsrmRouter {
    async fn table(&self, points: &[Coordinates], profile: Profile) -> TravelTable {
        if points.len() < 2 || points.len() > MAX_POINTS {
            return GreatCircle::compute(points, profile);
        }
        match self.ask(points, profile).await {
            Ok(table) => table,
            Err(e) => {
                tracing::warn!(error = %e, "OSRM table unavailable; using great circles");
                GreatCircle::compute(points, profile)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::Router as Routes;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use medex_core::config::SystemConfig;
    use medex_core::model::VehicleType;

    use super::*;

    /// What the stub OSRM answers next.
    #[derive(Clone, Copy)]
    enum Mode {
        /// A table whose distances are 1 km per index step.
        Table,
        /// HTTP 500.
        Fails,
        /// `{"code": "NoTable"}`.
        NoTable,
        /// A table of the wrong size.
        WrongSize,
        /// Never answers within the client's timeout.
        Hangs,
    }

    #[derive(Clone)]
    struct Stub {
        mode: Arc<Mutex<Mode>>,
        asked: Arc<Mutex<Vec<String>>>,
    }

    async fn table(
        State(stub): State<Stub>,
        Path((profile, coords)): Path<(String, String)>,
    ) -> Response {
        stub.asked
            .lock()
            .unwrap()
            .push(format!("{profile}/{coords}"));
        let n = coords.split(';').count();
        let mode = *stub.mode.lock().unwrap();
        match mode {
            Mode::Table => {
                let rows: Vec<Vec<f64>> = (0..n)
                    .map(|i| {
                        (0..n)
                            .map(|j| (i as f64 - j as f64).abs() * 1000.0)
                            .collect()
                    })
                    .collect();
                axum::Json(serde_json::json!({"code": "Ok", "distances": rows})).into_response()
            }
            Mode::Fails => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            Mode::NoTable => axum::Json(serde_json::json!({"code": "NoTable"})).into_response(),
            Mode::WrongSize => {
                axum::Json(serde_json::json!({"code": "Ok", "distances": [[0.0]]})).into_response()
            }
            Mode::Hangs => std::future::pending().await,
        }
    }

    /// A real OSRM-shaped server on a free loopback port.
    async fn stub() -> (SocketAddr, Stub) {
        let stub = Stub {
            mode: Arc::new(Mutex::new(Mode::Table)),
            asked: Arc::new(Mutex::new(Vec::new())),
        };
        let routes = Routes::new()
            .route("/table/v1/{profile}/{coords}", get(table))
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
        (addr, stub)
    }

    fn points() -> Vec<Coordinates> {
        [(52.52, 13.40), (52.53, 13.41), (52.54, 13.42)]
            .into_iter()
            .map(|(lat, lon)| Coordinates::new(lat, lon).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn streets_from_osrm_and_great_circles_when_it_fails() {
        let (addr, stub) = stub().await;
        let router =
            OsrmRouter::new(&format!("http://{addr}/"), Duration::from_millis(500)).unwrap();
        let profile = Profile::of(VehicleType::Scooter, &SystemConfig::default());
        let points = points();

        let table = router.table(&points, profile).await;
        assert_eq!(table.km(0, 2), 2.0, "OSRM's distances");
        assert!(
            (table.minutes(0, 2) - 2.0 / 25.0 * 60.0).abs() < 1e-9,
            "at the scooter's speed"
        );
        assert_eq!(
            stub.asked.lock().unwrap().as_slice(),
            ["driving/13.400000,52.520000;13.410000,52.530000;13.420000,52.540000"],
            "longitude first, as OSRM reads coordinates"
        );

        let great_circles = GreatCircle::compute(&points, profile);
        for mode in [Mode::Fails, Mode::NoTable, Mode::WrongSize, Mode::Hangs] {
            *stub.mode.lock().unwrap() = mode;
            assert_eq!(router.table(&points, profile).await, great_circles);
        }
        // Nobody listens there at all.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let away =
            OsrmRouter::new(&format!("http://{closed}"), Duration::from_millis(500)).unwrap();
        assert_eq!(away.table(&points, profile).await, great_circles);
    }
}
