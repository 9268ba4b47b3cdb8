//! Stop sequencing for a driver's run (DESIGN §14): in which order to visit the pharmacy and
//! the customers so that the whole run takes the least time, as a pure function of the run and
//! a table of travel times between its points (from a [`crate::router::Router`]).
//!
//! A run is a start (the driver's position), the orders' pickup points (one stop per distinct
//! point: the driver collects every parcel waiting there at once) and one drop-off per order.
//! A drop-off comes after its pickup unless the parcel is already on board. The time of a plan
//! is the travel time of its legs plus any wait for a drop-off's `deliver_after`; its lateness
//! is the minutes by which drop-offs miss their `deliver_before`. Plans compare by lateness
//! first, then time: windows are kept where they can be, and otherwise missed by as little as
//! possible.
//!
//! Up to [`EXACT_DROPOFFS`] drop-offs the plan is exact: a dynamic programme over subsets of
//! visited stops, which keeps for each (visited set, last stop) every label (time, lateness)
//! that no other label beats in both — waiting is allowed, so arriving earlier never hurts and
//! these labels are all a completion can depend on. Beyond that, a heuristic: cheapest
//! insertion of each order (its pickup, then its drop-off after it), then local search with
//! Or-opt (move a segment of one to three stops elsewhere) and 2-opt (reverse a segment) while
//! either improves the plan, every candidate checked for precedence. It has no guarantee, only
//! a local optimum for these moves.

use chrono::{DateTime, Duration, Utc};

use crate::model::{Coordinates, OrderId};

/// Runs with at most this many drop-offs are sequenced exactly.
pub const EXACT_DROPOFFS: usize = 10;

/// Travel between every pair of a run's points: minutes and kilometres, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct TravelTable {
    size: usize,
    minutes: Vec<f64>,
    km: Vec<f64>,
}

impl TravelTable {
    /// A table of `size` points from row-major `minutes` and `km` (each `size × size`); `None`
    /// when the lengths do not match or a value is negative or not finite.
    pub fn new(size: usize, minutes: Vec<f64>, km: Vec<f64>) -> Option<Self> {
        let cells = size.checked_mul(size)?;
        let sane = |v: &Vec<f64>| v.len() == cells && v.iter().all(|x| x.is_finite() && *x >= 0.0);
        (sane(&minutes) && sane(&km)).then_some(Self { size, minutes, km })
    }

    /// A table built cell by cell from `leg(from, to) -> (minutes, km)`.
    pub fn from_fn(size: usize, mut leg: impl FnMut(usize, usize) -> (f64, f64)) -> Self {
        let mut minutes = Vec::with_capacity(size * size);
        let mut km = Vec::with_capacity(size * size);
        for from in 0..size {
            for to in 0..size {
                let (m, k) = if from == to {
                    (0.0, 0.0)
                } else {
                    leg(from, to)
                };
                minutes.push(m.max(0.0));
                km.push(k.max(0.0));
            }
        }
        Self { size, minutes, km }
    }

    /// How many points.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Minutes from point `from` to point `to`.
    pub fn minutes(&self, from: usize, to: usize) -> f64 {
        self.minutes[from * self.size + to]
    }

    /// Kilometres from point `from` to point `to`.
    pub fn km(&self, from: usize, to: usize) -> f64 {
        self.km[from * self.size + to]
    }

    /// The table between the points `at` (indices of this table's points), in that order.
    fn select(&self, at: &[usize]) -> Self {
        let mut minutes = Vec::with_capacity(at.len() * at.len());
        let mut km = Vec::with_capacity(at.len() * at.len());
        for &from in at {
            for &to in at {
                minutes.push(self.minutes(from, to));
                km.push(self.km(from, to));
            }
        }
        Self {
            size: at.len(),
            minutes,
            km,
        }
    }
}

/// When a drop-off should happen (UTC); either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Not before.
    pub after: Option<DateTime<Utc>>,
    /// Not after.
    pub before: Option<DateTime<Utc>>,
}

impl Window {
    /// Whether it constrains anything.
    pub fn is_open(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }
}

/// One order of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOrder {
    /// Which order.
    pub order_id: OrderId,
    /// Where its parcel waits.
    pub pickup: Coordinates,
    /// Where it goes.
    pub dropoff: Coordinates,
    /// Whether the driver has the parcel already (no pickup stop).
    pub on_board: bool,
    /// When it should be handed over.
    pub window: Window,
}

/// A run to sequence: where the driver is, when, and its orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The driver's position (the pickup point when it has none).
    pub start: Coordinates,
    /// Now: the origin of ETAs and windows.
    pub now: DateTime<Utc>,
    /// Its orders.
    pub orders: Vec<RunOrder>,
}

/// What a stop is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// Collect the parcel at the pharmacy.
    Pickup,
    /// Hand it over.
    Dropoff,
}

/// One stop of a plan, per order: a pickup point serving several orders appears once per order,
/// with the same ETA.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Whose.
    pub order_id: OrderId,
    /// What for.
    pub kind: StopKind,
    /// Where.
    pub at: Coordinates,
    /// When the driver gets there (after any wait for the window's start).
    pub eta: DateTime<Utc>,
    /// Minutes from now to then.
    pub minutes: f64,
    /// Kilometres driven from the start to here.
    pub km: f64,
    /// The drop-off's window, if any.
    pub window: Option<Window>,
    /// Whether the ETA falls after the window's end.
    pub late: bool,
}

/// A sequenced run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Stops in the order to visit them.
    pub stops: Vec<Stop>,
    /// Kilometres of the whole run.
    pub total_km: f64,
    /// Minutes of the whole run, waits included.
    pub total_minutes: f64,
    /// Minutes by which drop-offs miss their windows, summed.
    pub late_minutes: f64,
}

impl Plan {
    /// The drop-off order of the plan.
    pub fn dropoff_order(&self) -> Vec<OrderId> {
        self.stops
            .iter()
            .filter(|s| s.kind == StopKind::Dropoff)
            .map(|s| s.order_id)
            .collect()
    }
}

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequencingError {
    /// The table does not have one row per point of [`Run::points`].
    #[error("the travel table has {got} points, the run {expected}")]
    TableSize {
        /// Points of the run.
        expected: usize,
        /// Points of the table.
        got: usize,
    },
    /// A manual order does not name exactly the run's orders.
    #[error("the stop order must name each order of the run exactly once")]
    NotTheRun,
}

/// The points of a run, in the order a travel table must list them, and what each is.
#[derive(Debug, Clone)]
struct Layout {
    /// Point 0 is the start, then the pickup points (`pickups`), then one drop-off per order.
    points: Vec<Coordinates>,
    pickups: usize,
    /// For each order: its pickup node (index among nodes, see below), or `None` on board.
    needs: Vec<Option<usize>>,
}

// Nodes are the points without the start: node `k` is point `k + 1`. Pickup nodes come first
// (0..pickups), then drop-off node `pickups + i` for order `i`.
impl Layout {
    fn of(run: &Run) -> Self {
        let mut pickups: Vec<Coordinates> = Vec::new();
        let mut needs = Vec::with_capacity(run.orders.len());
        for order in &run.orders {
            if order.on_board {
                needs.push(None);
                continue;
            }
            let at = match pickups.iter().position(|p| *p == order.pickup) {
                Some(at) => at,
                None => {
                    pickups.push(order.pickup);
                    pickups.len() - 1
                }
            };
            needs.push(Some(at));
        }
        let mut points = Vec::with_capacity(1 + pickups.len() + run.orders.len());
        points.push(run.start);
        points.extend(pickups.iter().copied());
        points.extend(run.orders.iter().map(|o| o.dropoff));
        Self {
            pickups: pickups.len(),
            points,
            needs,
        }
    }

    fn nodes(&self) -> usize {
        self.points.len() - 1
    }

    /// The pickup node that must come before `node`, if any.
    fn precedes(&self, node: usize) -> Option<usize> {
        node.checked_sub(self.pickups)
            .and_then(|order| self.needs[order])
    }
}

impl Run {
    /// The points a travel table for this run must list, in this order: the start, each
    /// distinct pickup point of a parcel not yet on board, then each order's drop-off.
    pub fn points(&self) -> Vec<Coordinates> {
        Layout::of(self).points
    }
}

/// The time and lateness of a sequence so far.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cost {
    late: f64,
    minutes: f64,
}

/// Two costs closer than this (minutes) are equal: floating sums differ in their last bits.
const EPSILON: f64 = 1e-9;

impl Cost {
    fn better_than(&self, other: &Cost) -> bool {
        if (self.late - other.late).abs() > EPSILON {
            self.late < other.late
        } else {
            self.minutes < other.minutes - EPSILON
        }
    }

    fn dominates(&self, other: &Cost) -> bool {
        self.late <= other.late + EPSILON && self.minutes <= other.minutes + EPSILON
    }
}

/// Windows in minutes from now, per node (pickups have none).
struct Windows {
    after: Vec<f64>,
    before: Vec<f64>,
}

impl Windows {
    fn of(run: &Run, layout: &Layout) -> Self {
        let minutes = |t: DateTime<Utc>| (t - run.now).num_milliseconds() as f64 / 60_000.0;
        let mut after = vec![f64::NEG_INFINITY; layout.nodes()];
        let mut before = vec![f64::INFINITY; layout.nodes()];
        for (i, order) in run.orders.iter().enumerate() {
            let node = layout.pickups + i;
            if let Some(t) = order.window.after {
                after[node] = minutes(t);
            }
            if let Some(t) = order.window.before {
                before[node] = minutes(t);
            }
        }
        Self { after, before }
    }

    /// Arriving at `node` at `t`: when the stop is made, and the lateness it adds.
    fn arrive(&self, node: usize, t: f64) -> (f64, f64) {
        let t = t.max(self.after[node]);
        (t, (t - self.before[node]).max(0.0))
    }
}

struct Problem<'a> {
    layout: Layout,
    windows: Windows,
    table: &'a TravelTable,
}

impl Problem<'_> {
    /// Travel minutes between nodes; `None` is the start.
    fn leg(&self, from: Option<usize>, to: usize) -> f64 {
        self.table.minutes(from.map_or(0, |n| n + 1), to + 1)
    }

    /// The cost of visiting `sequence` (nodes) in order, or `None` if it breaks a precedence.
    fn evaluate(&self, sequence: &[usize]) -> Option<Cost> {
        let mut seen = vec![false; self.layout.nodes()];
        let mut cost = Cost {
            late: 0.0,
            minutes: 0.0,
        };
        let mut at = None;
        for &node in sequence {
            if let Some(p) = self.layout.precedes(node)
                && !seen[p]
            {
                return None;
            }
            seen[node] = true;
            let (t, late) = self.windows.arrive(node, cost.minutes + self.leg(at, node));
            cost = Cost {
                late: cost.late + late,
                minutes: t,
            };
            at = Some(node);
        }
        Some(cost)
    }

    /// The stops, distances and times of `sequence`, a complete feasible node order.
    fn plan(&self, run: &Run, sequence: &[usize]) -> Plan {
        let mut stops = Vec::new();
        let (mut minutes, mut km, mut late_total) = (0.0, 0.0, 0.0);
        let mut at = None;
        for &node in sequence {
            let from = at.map_or(0, |n: usize| n + 1);
            km += self.table.km(from, node + 1);
            let (t, late) = self.windows.arrive(node, minutes + self.leg(at, node));
            minutes = t;
            late_total += late;
            let eta = run.now + Duration::milliseconds((t * 60_000.0).round() as i64);
            if node < self.layout.pickups {
                for (i, order) in run.orders.iter().enumerate() {
                    if self.layout.needs[i] == Some(node) {
                        stops.push(Stop {
                            order_id: order.order_id,
                            kind: StopKind::Pickup,
                            at: self.layout.points[node + 1],
                            eta,
                            minutes: t,
                            km,
                            window: None,
                            late: false,
                        });
                    }
                }
            } else {
                let order = &run.orders[node - self.layout.pickups];
                stops.push(Stop {
                    order_id: order.order_id,
                    kind: StopKind::Dropoff,
                    at: order.dropoff,
                    eta,
                    minutes: t,
                    km,
                    window: (!order.window.is_open()).then_some(order.window),
                    late: late > 0.0,
                });
            }
            at = Some(node);
        }
        Plan {
            stops,
            total_km: km,
            total_minutes: minutes,
            late_minutes: late_total,
        }
    }
}

fn problem<'a>(run: &Run, table: &'a TravelTable) -> Result<Problem<'a>, SequencingError> {
    let layout = Layout::of(run);
    if table.size() != layout.points.len() {
        return Err(SequencingError::TableSize {
            expected: layout.points.len(),
            got: table.size(),
        });
    }
    let windows = Windows::of(run, &layout);
    Ok(Problem {
        layout,
        windows,
        table,
    })
}

/// The best plan for `run` with travel from `table` (listing [`Run::points`]): exact up to
/// [`EXACT_DROPOFFS`] drop-offs, a heuristic beyond (see the module's documentation).
pub fn sequence(run: &Run, table: &TravelTable) -> Result<Plan, SequencingError> {
    let problem = problem(run, table)?;
    // Subsets of nodes: exact while they stay few (one pharmacy and ten drop-offs is 11 nodes).
    let order = if run.orders.len() <= EXACT_DROPOFFS && problem.layout.nodes() <= 14 {
        exact(&problem)
    } else {
        heuristic(&problem)
    };
    Ok(problem.plan(run, &order))
}

/// The plan that visits the drop-offs in `dropoffs` order (which must name each order of the
/// run once). Each pickup point is visited once, where it costs least before the first drop-off
/// that needs it: a driver standing at the pharmacy collects every parcel there first, one out
/// on the road delivers what it carries before coming back, whichever is sooner.
pub fn in_order(
    run: &Run,
    table: &TravelTable,
    dropoffs: &[OrderId],
) -> Result<Plan, SequencingError> {
    let problem = problem(run, table)?;
    let mut nodes = Vec::with_capacity(problem.layout.nodes());
    let mut named = vec![false; run.orders.len()];
    let mut points = Vec::new();
    for id in dropoffs {
        let Some(i) = run.orders.iter().position(|o| o.order_id == *id) else {
            return Err(SequencingError::NotTheRun);
        };
        if std::mem::replace(&mut named[i], true) {
            return Err(SequencingError::NotTheRun);
        }
        if let Some(p) = problem.layout.needs[i]
            && !points.contains(&p)
        {
            points.push(p);
        }
        nodes.push(problem.layout.pickups + i);
    }
    if named.iter().any(|n| !n) {
        return Err(SequencingError::NotTheRun);
    }
    let cost = |nodes: &[usize]| {
        let plan = problem.plan(run, nodes);
        Cost {
            late: plan.late_minutes,
            minutes: plan.total_minutes,
        }
    };
    for p in points {
        let first_need = nodes
            .iter()
            .position(|&node| {
                node >= problem.layout.pickups
                    && problem.layout.needs[node - problem.layout.pickups] == Some(p)
            })
            .unwrap_or(nodes.len());
        let mut best: Option<(Cost, usize)> = None;
        for at in 0..=first_need {
            let mut tried = nodes.clone();
            tried.insert(at, p);
            let c = cost(&tried);
            if best.is_none_or(|(b, _)| !b.better_than(&c)) {
                best = Some((c, at));
            }
        }
        nodes.insert(best.map_or(first_need, |(_, at)| at), p);
    }
    Ok(problem.plan(run, &nodes))
}

/// What one more order does to a run: both plans, and the new order's drop-off in the longer.
#[derive(Debug, Clone, PartialEq)]
pub struct Insertion {
    /// The run as it is.
    pub without: Plan,
    /// The run with the order.
    pub with: Plan,
    /// Minutes the order adds to the whole run (never below zero: a heuristic plan or a
    /// window's trade of lateness against time may make the longer run look shorter).
    pub added_minutes: f64,
    /// Minutes from now to the order's drop-off in the longer run.
    pub eta_minutes: f64,
    /// Kilometres from the start to the order's drop-off in the longer run.
    pub km: f64,
}

/// Sequences `run` with and without `order`, from one `table` listing the points of the run
/// with the order (`Run::points` of `run` with `order` appended): the shorter run's table is
/// taken from it, so a road router is asked once.
pub fn insertion(
    run: &Run,
    order: RunOrder,
    table: &TravelTable,
) -> Result<Insertion, SequencingError> {
    let order_id = order.order_id;
    let mut longer = run.clone();
    longer.orders.push(order);
    let long = Layout::of(&longer);
    if table.size() != long.points.len() {
        return Err(SequencingError::TableSize {
            expected: long.points.len(),
            got: table.size(),
        });
    }
    // The shorter run's points among the longer's: the start, the pickup points it shares
    // (all but possibly the new order's), then its drop-offs, which come first among the
    // longer run's.
    let short = Layout::of(run);
    let mut at = vec![0];
    for point in &short.points[1..=short.pickups] {
        let found = long.points[1..=long.pickups]
            .iter()
            .position(|p| p == point)
            .ok_or(SequencingError::NotTheRun)?;
        at.push(found + 1);
    }
    at.extend((0..run.orders.len()).map(|i| 1 + long.pickups + i));
    let without = sequence(run, &table.select(&at))?;
    let with = sequence(&longer, table)?;
    let dropoff = with
        .stops
        .iter()
        .find(|s| s.order_id == order_id && s.kind == StopKind::Dropoff)
        .ok_or(SequencingError::NotTheRun)?;
    Ok(Insertion {
        added_minutes: (with.total_minutes - without.total_minutes).max(0.0),
        eta_minutes: dropoff.minutes,
        km: dropoff.km,
        without,
        with,
    })
}

/// A label of the dynamic programme: cost so far and where it came from.
#[derive(Debug, Clone, Copy)]
struct Label {
    cost: Cost,
    /// Index of the previous label in the arena (`usize::MAX` for the first stop).
    parent: usize,
    node: usize,
}

fn exact(problem: &Problem<'_>) -> Vec<usize> {
    let n = problem.layout.nodes();
    if n == 0 {
        return Vec::new();
    }
    let full = (1usize << n) - 1;
    // Which nodes must be visited before each node, as a mask.
    let required: Vec<usize> = (0..n)
        .map(|node| problem.layout.precedes(node).map_or(0, |p| 1 << p))
        .collect();
    let mut arena: Vec<Label> = Vec::new();
    // labels[mask * n + last] = indices into the arena, a Pareto front.
    let mut labels: Vec<Vec<usize>> = vec![Vec::new(); (full + 1) * n];
    for (node, &needs) in required.iter().enumerate() {
        if needs != 0 {
            continue;
        }
        let (t, late) = problem.windows.arrive(node, problem.leg(None, node));
        arena.push(Label {
            cost: Cost { late, minutes: t },
            parent: usize::MAX,
            node,
        });
        labels[(1 << node) * n + node].push(arena.len() - 1);
    }
    // Masks in increasing order: every subset comes before its supersets.
    for mask in 1..=full {
        for last in 0..n {
            if mask & (1 << last) == 0 {
                continue;
            }
            let front = std::mem::take(&mut labels[mask * n + last]);
            for &at in &front {
                let label = arena[at];
                for (next, &needs) in required.iter().enumerate() {
                    let bit = 1 << next;
                    if mask & bit != 0 || mask & needs != needs {
                        continue;
                    }
                    let (t, late) = problem
                        .windows
                        .arrive(next, label.cost.minutes + problem.leg(Some(last), next));
                    let cost = Cost {
                        late: label.cost.late + late,
                        minutes: t,
                    };
                    let slot = (mask | bit) * n + next;
                    if labels[slot]
                        .iter()
                        .any(|&other| arena[other].cost.dominates(&cost))
                    {
                        continue;
                    }
                    labels[slot].retain(|&other| !cost.dominates(&arena[other].cost));
                    arena.push(Label {
                        cost,
                        parent: at,
                        node: next,
                    });
                    labels[slot].push(arena.len() - 1);
                }
            }
            labels[mask * n + last] = front;
        }
    }
    let best = (0..n)
        .flat_map(|last| labels[full * n + last].iter().copied())
        .reduce(|a, b| {
            if arena[b].cost.better_than(&arena[a].cost) {
                b
            } else {
                a
            }
        });
    let mut sequence = Vec::with_capacity(n);
    let mut at = best.unwrap_or(usize::MAX);
    while at != usize::MAX {
        sequence.push(arena[at].node);
        at = arena[at].parent;
    }
    sequence.reverse();
    sequence
}

fn heuristic(problem: &Problem<'_>) -> Vec<usize> {
    let layout = &problem.layout;
    let mut sequence: Vec<usize> = Vec::with_capacity(layout.nodes());
    // Cheapest insertion, one order at a time: its pickup point (if not yet in), then its drop-off.
    for order in 0..layout.needs.len() {
        let dropoff = layout.pickups + order;
        let pickup = layout.needs[order].filter(|p| !sequence.contains(p));
        let mut best: Option<(Cost, Vec<usize>)> = None;
        let pickup_positions: Vec<Option<usize>> = match pickup {
            Some(_) => (0..=sequence.len()).map(Some).collect(),
            None => vec![None],
        };
        for p in pickup_positions {
            let mut with_pickup = sequence.clone();
            if let (Some(at), Some(node)) = (p, pickup) {
                with_pickup.insert(at, node);
            }
            let from = p.map_or(0, |at| at + 1);
            for d in from..=with_pickup.len() {
                let mut candidate = with_pickup.clone();
                candidate.insert(d, dropoff);
                if let Some(cost) = problem.evaluate(&candidate)
                    && best.as_ref().is_none_or(|(b, _)| cost.better_than(b))
                {
                    best = Some((cost, candidate));
                }
            }
        }
        if let Some((_, candidate)) = best {
            sequence = candidate;
        }
    }
    improve(problem, sequence)
}

/// Or-opt and 2-opt moves while one improves the plan (first improvement, scanning on).
fn improve(problem: &Problem<'_>, mut sequence: Vec<usize>) -> Vec<usize> {
    let Some(mut cost) = problem.evaluate(&sequence) else {
        return sequence;
    };
    let n = sequence.len();
    // Each accepted move strictly improves the cost; the bound only guards against float noise.
    for _ in 0..100 {
        let mut improved = false;
        // Or-opt: move a segment of 1 to 3 stops to another place.
        for len in 1..=3.min(n) {
            for from in 0..=n - len {
                let mut rest = sequence.clone();
                let segment: Vec<usize> = rest.drain(from..from + len).collect();
                for to in (0..=rest.len()).filter(|&to| to != from) {
                    let mut candidate = rest.clone();
                    candidate.splice(to..to, segment.iter().copied());
                    if let Some(c) = problem.evaluate(&candidate)
                        && c.better_than(&cost)
                    {
                        sequence = candidate;
                        cost = c;
                        improved = true;
                        break;
                    }
                }
            }
        }
        // 2-opt: reverse a segment.
        for i in 0..n {
            for j in i + 2..=n {
                sequence[i..j].reverse();
                match problem.evaluate(&sequence) {
                    Some(c) if c.better_than(&cost) => {
                        cost = c;
                        improved = true;
                    }
                    _ => sequence[i..j].reverse(),
                }
            }
        }
        if !improved {
            break;
        }
    }
    sequence
}

#[cfg(test)]
mod tests;
