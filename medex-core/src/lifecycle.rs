//! The order lifecycle: one table of every legal move, who may make it, and what it records.
//!
//! [`RULES`] is the whole state machine; [`apply`] is the only code that changes an order's
//! status, and the only code that appends to its chain of custody (each entry linked and the
//! head signed, see [`crate::custody`]). Effects on drivers (busy, freed, credited) are the use
//! cases' business: they follow from the action taken, see [`crate::service`].

use chrono::{DateTime, Utc};

use crate::custody::{self, CustodyKeys};
use crate::model::{CustodyLocation, Order, OrderStatus, Role, StatusChange, UserId};
use crate::permissions::{Party, PartySet};

/// Something an actor asks to do to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The pharmacy takes the order.
    Accept,
    /// The pharmacy refuses it (a reason is required).
    Reject,
    /// The pharmacy assigns (or re-assigns, before pickup) a driver.
    AssignDriver,
    /// The assigned driver hands the assignment back.
    DeclineAssignment,
    /// The assigned driver has the parcel.
    PickUp,
    /// The assigned driver leaves for the customer.
    StartDelivery,
    /// The assigned driver hands the parcel over.
    Deliver,
    /// Someone calls the order off.
    Cancel,
    /// The assigned driver could not hand the parcel over (a reason code is required).
    Fail,
    /// The assigned driver tries again on the same run.
    RetryDelivery,
    /// The pharmacy confirms the parcel is back.
    ConfirmReturn,
    /// The pharmacy dispatches a returned order again: a new attempt.
    NewAttempt,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 12] = [
        Action::Accept,
        Action::Reject,
        Action::AssignDriver,
        Action::DeclineAssignment,
        Action::PickUp,
        Action::StartDelivery,
        Action::Deliver,
        Action::Cancel,
        Action::Fail,
        Action::RetryDelivery,
        Action::ConfirmReturn,
        Action::NewAttempt,
    ];

    /// A short name for messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::AssignDriver => "assign_driver",
            Action::DeclineAssignment => "decline_assignment",
            Action::PickUp => "pick_up",
            Action::StartDelivery => "start_delivery",
            Action::Deliver => "deliver",
            Action::Cancel => "cancel",
            Action::Fail => "fail",
            Action::RetryDelivery => "retry_delivery",
            Action::ConfirmReturn => "confirm_return",
            Action::NewAttempt => "new_attempt",
        }
    }

    /// The action that moves an order from `from` into `to` when a client asks for the status by
    /// name (`PATCH /orders/{id} {"status": …}`), read from [`RULES`]: the row leading from
    /// `from` to `to`, else the first row leading to `to` (which then refuses the move with the
    /// usual error). `driver_assigned` goes through assign-driver and declining through the
    /// assignment endpoint, so neither is reached by name.
    pub fn toward(from: OrderStatus, to: OrderStatus) -> Option<Action> {
        let by_name = |rule: &&Rule| {
            rule.to == to
                && !matches!(
                    rule.action,
                    Action::AssignDriver | Action::DeclineAssignment
                )
        };
        RULES
            .iter()
            .filter(by_name)
            .find(|rule| rule.from.contains(&from))
            .or_else(|| RULES.iter().find(by_name))
            .map(|rule| rule.action)
    }
}

/// Whether a move needs a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A reason is kept when given.
    Optional,
    /// The move is refused without a non-blank reason.
    Required,
}

/// One row of the lifecycle table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// What is asked.
    pub action: Action,
    /// The statuses it may be asked in.
    pub from: &'static [OrderStatus],
    /// The status it leads to.
    pub to: OrderStatus,
    /// Who may ask.
    pub by: &'static [Party],
    /// Whether a reason is needed.
    pub reason: Reason,
}

use OrderStatus::*;
use Party::{Admin, AssignedDriver, Customer, Vendor};

/// The lifecycle. A move is legal when a row has its action, the order's status in `from`, and
/// one of the actor's parties in `by`.
pub const RULES: &[Rule] = &[
    Rule {
        action: Action::Accept,
        from: &[Pending],
        to: Accepted,
        by: &[Vendor, Admin],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::Reject,
        from: &[Pending],
        to: Rejected,
        by: &[Vendor, Admin],
        reason: Reason::Required,
    },
    Rule {
        action: Action::AssignDriver,
        from: &[Accepted, DriverAssigned],
        to: DriverAssigned,
        by: &[Vendor, Admin],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::DeclineAssignment,
        from: &[DriverAssigned],
        to: Accepted,
        by: &[AssignedDriver],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::PickUp,
        from: &[DriverAssigned],
        to: PickedUp,
        by: &[AssignedDriver],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::StartDelivery,
        from: &[PickedUp],
        to: OutForDelivery,
        by: &[AssignedDriver],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::Deliver,
        from: &[OutForDelivery],
        to: Delivered,
        by: &[AssignedDriver],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::Cancel,
        from: &[Pending, Accepted],
        to: Cancelled,
        by: &[Customer],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::Cancel,
        from: &[Pending, Accepted, DriverAssigned],
        to: Cancelled,
        by: &[Vendor, Admin],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::Cancel,
        from: &[PickedUp, OutForDelivery],
        to: Cancelled,
        by: &[Admin],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::Fail,
        from: &[OutForDelivery],
        to: Failed,
        by: &[AssignedDriver],
        reason: Reason::Required,
    },
    Rule {
        action: Action::RetryDelivery,
        from: &[Failed],
        to: OutForDelivery,
        by: &[AssignedDriver],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::ConfirmReturn,
        from: &[Failed],
        to: Returned,
        by: &[Vendor, Admin],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::NewAttempt,
        from: &[Returned],
        to: Accepted,
        by: &[Vendor, Admin],
        reason: Reason::Optional,
    },
    Rule {
        action: Action::Cancel,
        from: &[Returned],
        to: Cancelled,
        by: &[Vendor, Admin],
        reason: Reason::Optional,
    },
];

/// Why a move was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// None of the actor's parties may take this action from the order's status.
    #[error("cannot {action} an order that is {from}", action = .action.as_str())]
    NotAllowed {
        /// The order's status.
        from: OrderStatus,
        /// What was asked.
        action: Action,
    },
    /// The move needs a reason and none was given.
    #[error("a reason is required")]
    ReasonRequired,
}

/// What the lifecycle says about an action by these parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Legal now, by this rule.
    Allowed(&'static Rule),
    /// These parties may take this action in some status, not in this one (HTTP 409).
    NotNow,
    /// These parties may never take this action (HTTP 403).
    NeverByThem,
}

/// Looks the move up in [`RULES`].
pub fn decide(status: OrderStatus, parties: PartySet, action: Action) -> Verdict {
    let mut ever = false;
    for rule in RULES.iter().filter(|r| r.action == action) {
        if rule.by.iter().any(|p| parties.contains(*p)) {
            if rule.from.contains(&status) {
                return Verdict::Allowed(rule);
            }
            ever = true;
        }
    }
    if ever {
        Verdict::NotNow
    } else {
        Verdict::NeverByThem
    }
}

/// Who made a move, for the chain of custody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// The account.
    pub actor_id: UserId,
    /// In which capacity.
    pub actor_role: Role,
}

/// What a move records besides the status it enters: who made it, why, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// Who.
    pub by: Signature,
    /// Why (for `failed`, the reason code, already checked by the caller).
    pub reason: Option<String>,
    /// The driver's note about a failed attempt.
    pub note: Option<String>,
    /// The acting driver's last known position.
    pub location: Option<CustodyLocation>,
}

impl Move {
    /// A move by `by`, with nothing else to record.
    pub fn by(by: Signature) -> Self {
        Self {
            by,
            reason: None,
            note: None,
            location: None,
        }
    }

    /// With a reason; blank counts as none.
    pub fn because(mut self, reason: Option<&str>) -> Self {
        self.reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        self
    }
}

/// Applies a move allowed by `rule` to `order`: new status, the timestamps the status stamps,
/// reasons, and one new `status_history` entry, linked to the one before and signed with the
/// current custody key. Returns the changed copy; `order` is untouched.
///
/// `now` is clamped to the order's last change so the history never goes backwards even if
/// the clock does.
pub fn apply(
    order: &Order,
    rule: &Rule,
    with: Move,
    now: DateTime<Utc>,
    keys: &CustodyKeys,
) -> Result<Order, TransitionError> {
    if !rule.from.contains(&order.status) {
        return Err(TransitionError::NotAllowed {
            from: order.status,
            action: rule.action,
        });
    }
    let Move {
        by,
        reason,
        note,
        location,
    } = with;
    if rule.reason == Reason::Required && reason.is_none() {
        return Err(TransitionError::ReasonRequired);
    }
    let at = now.max(order.updated_at);
    let mut next = order.clone();
    next.status = rule.to;
    next.updated_at = at;
    let mut proofs = Vec::new();
    match rule.action {
        Action::Accept => next.accepted_at = Some(at),
        Action::Reject => next.reject_reason = reason.clone(),
        Action::AssignDriver => next.driver_accepted_at = None,
        Action::DeclineAssignment => {
            next.driver_id = None;
            next.driver_accepted_at = None;
        }
        Action::PickUp => {
            next.picked_up_at = Some(at);
            next.driver_accepted_at.get_or_insert(at);
        }
        Action::StartDelivery => next.out_for_delivery_at = Some(at),
        Action::RetryDelivery => {
            next.out_for_delivery_at = Some(at);
            // Another approach to the door: its arrivals are told again.
            next.driver_arriving_at = None;
            next.driver_arrived_at = None;
        }
        Action::Deliver => {
            next.delivered_at = Some(at);
            proofs = order.proofs.iter().map(|p| p.sha256).collect();
        }
        Action::Cancel => {
            next.cancelled_at = Some(at);
            next.cancel_reason = reason.clone();
        }
        Action::Fail => next.failure_reason = reason.as_deref().and_then(|r| r.parse().ok()),
        Action::ConfirmReturn => {}
        Action::NewAttempt => {
            // The timestamps describe the attempt under way; the history keeps the earlier ones.
            next.attempt = order.attempt.saturating_add(1);
            next.accepted_at = Some(at);
            next.driver_id = None;
            next.driver_accepted_at = None;
            next.picked_up_at = None;
            next.out_for_delivery_at = None;
            next.driver_arriving_at = None;
            next.driver_arrived_at = None;
            next.handover_failures = 0;
        }
    }
    let entry = StatusChange {
        status: rule.to,
        at,
        actor_id: by.actor_id,
        actor_role: by.actor_role,
        reason,
        note,
        location,
        proof_sha256: proofs,
        prev_hash: String::new(),
        hash: String::new(),
    };
    custody::append(&mut next, entry, keys);
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parties(list: &[Party]) -> PartySet {
        list.iter().fold(PartySet::NONE, |set, p| set.with(*p))
    }

    /// Every (status, party, action) the table allows, as read from DESIGN §2, and nothing else.
    #[test]
    fn table_matches_the_contract() {
        let allowed: &[(OrderStatus, Party, Action, OrderStatus)] = &[
            (Pending, Vendor, Action::Accept, Accepted),
            (Pending, Admin, Action::Accept, Accepted),
            (Pending, Vendor, Action::Reject, Rejected),
            (Pending, Admin, Action::Reject, Rejected),
            (Accepted, Vendor, Action::AssignDriver, DriverAssigned),
            (Accepted, Admin, Action::AssignDriver, DriverAssigned),
            (DriverAssigned, Vendor, Action::AssignDriver, DriverAssigned),
            (DriverAssigned, Admin, Action::AssignDriver, DriverAssigned),
            (
                DriverAssigned,
                AssignedDriver,
                Action::DeclineAssignment,
                Accepted,
            ),
            (DriverAssigned, AssignedDriver, Action::PickUp, PickedUp),
            (
                PickedUp,
                AssignedDriver,
                Action::StartDelivery,
                OutForDelivery,
            ),
            (OutForDelivery, AssignedDriver, Action::Deliver, Delivered),
            (Pending, Customer, Action::Cancel, Cancelled),
            (Accepted, Customer, Action::Cancel, Cancelled),
            (Pending, Vendor, Action::Cancel, Cancelled),
            (Accepted, Vendor, Action::Cancel, Cancelled),
            (DriverAssigned, Vendor, Action::Cancel, Cancelled),
            (Pending, Admin, Action::Cancel, Cancelled),
            (Accepted, Admin, Action::Cancel, Cancelled),
            (DriverAssigned, Admin, Action::Cancel, Cancelled),
            (PickedUp, Admin, Action::Cancel, Cancelled),
            (OutForDelivery, Admin, Action::Cancel, Cancelled),
            // DESIGN §10: failed attempts and returns.
            (OutForDelivery, AssignedDriver, Action::Fail, Failed),
            (
                Failed,
                AssignedDriver,
                Action::RetryDelivery,
                OutForDelivery,
            ),
            (Failed, Vendor, Action::ConfirmReturn, Returned),
            (Failed, Admin, Action::ConfirmReturn, Returned),
            (Returned, Vendor, Action::NewAttempt, Accepted),
            (Returned, Admin, Action::NewAttempt, Accepted),
            (Returned, Vendor, Action::Cancel, Cancelled),
            (Returned, Admin, Action::Cancel, Cancelled),
        ];
        for status in OrderStatus::ALL {
            for party in [Customer, Vendor, AssignedDriver, Admin] {
                for action in Action::ALL {
                    let expected = allowed
                        .iter()
                        .find(|(s, p, a, _)| *s == status && *p == party && *a == action)
                        .map(|row| row.3);
                    let got = match decide(status, parties(&[party]), action) {
                        Verdict::Allowed(rule) => Some(rule.to),
                        _ => None,
                    };
                    assert_eq!(got, expected, "{status:?} {party:?} {action:?}");
                }
            }
        }
    }

    #[test]
    fn terminal_statuses_allow_nothing() {
        let everyone = parties(&[Customer, Vendor, AssignedDriver, Admin]);
        for status in OrderStatus::ALL
            .into_iter()
            .filter(OrderStatus::is_terminal)
        {
            for action in Action::ALL {
                assert!(!matches!(
                    decide(status, everyone, action),
                    Verdict::Allowed(_)
                ));
            }
        }
    }

    #[test]
    fn refusals_say_whether_the_party_could_ever() {
        assert_eq!(
            decide(Pending, parties(&[Customer]), Action::Deliver),
            Verdict::NeverByThem
        );
        assert_eq!(
            decide(PickedUp, parties(&[Customer]), Action::Cancel),
            Verdict::NotNow
        );
        assert_eq!(
            decide(PickedUp, parties(&[Vendor]), Action::Cancel),
            Verdict::NotNow
        );
        assert_eq!(
            decide(Pending, PartySet::NONE, Action::Accept),
            Verdict::NeverByThem
        );
        // The parcel must come back before a failed order can end.
        assert_eq!(
            decide(Failed, parties(&[Admin]), Action::Cancel),
            Verdict::NotNow
        );
    }

    #[test]
    fn statuses_asked_by_name_pick_the_row_from_where_the_order_is() {
        let check = |from, to, expect: Option<Action>| {
            assert_eq!(Action::toward(from, to), expect, "{from:?} -> {to:?}");
        };
        check(Pending, Accepted, Some(Action::Accept));
        check(Returned, Accepted, Some(Action::NewAttempt));
        check(DriverAssigned, Accepted, Some(Action::Accept));
        check(PickedUp, OutForDelivery, Some(Action::StartDelivery));
        check(Failed, OutForDelivery, Some(Action::RetryDelivery));
        check(Delivered, OutForDelivery, Some(Action::StartDelivery));
        check(OutForDelivery, Failed, Some(Action::Fail));
        check(Failed, Returned, Some(Action::ConfirmReturn));
        check(Returned, Cancelled, Some(Action::Cancel));
        check(OutForDelivery, Delivered, Some(Action::Deliver));
        check(Accepted, DriverAssigned, None);
        check(Accepted, Pending, None);
    }
}
