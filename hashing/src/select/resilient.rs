//! Linux resilient nexthop groups (`Documentation/networking/nexthop-group-resilient.rst`):
//! a fixed table of hash buckets in which only orphaned buckets move at once,
//! overweight buckets move once idle (or once the group has been unbalanced
//! for `unbalanced_timer`), so removing a member never moves anyone else's flows.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::modulo::FastMod;
use super::{
    validate_members, Algorithm, Member, MemberId, Nanos, ResilientParams, SelectError, Selector,
    SelectorParams,
};

/// Largest bucket count accepted (Linux's `u16` bucket indices).
pub const MAX_BUCKETS: u32 = 65_535;

/// Owner marker of a bucket whose member has left the group.
const ORPHAN: u32 = u32::MAX;

/// A Linux resilient nexthop group.
///
/// A flow goes to bucket `hash % buckets`; each bucket names a member and
/// remembers when it was last used. The group is kept as Linux keeps it
/// (`net/ipv4/nexthop.c`):
///
/// * On every change each member's wanted bucket count is computed Linux's way:
///   walking the members in order with cumulative weight `w` out of `total`,
///   `upper = DIV_ROUND_CLOSEST(buckets * w, total)` and the member wants
///   `upper - previous upper`. A member holding more buckets than it wants is
///   overweight, fewer underweight; the group is balanced when none is
///   underweight.
/// * Assigning a bucket (initial fill or migration) sets its last-used time to
///   `now`, so a freshly assigned bucket becomes idle only `idle_timer` later.
/// * [`Selector::upkeep`] walks the buckets in index order and migrates a bucket
///   (a) at once if its member left the group (orphaned), (b) if its member is
///   overweight and the bucket is idle (`now - last_used >= idle_timer`; an
///   idle timer of 0 makes every bucket idle), or (c) if its member is
///   overweight and the group has been unbalanced for longer than
///   `unbalanced_timer` (when that timer is non-zero; Linux's `time_after`).
///   The new owner is the *last* underweight member in group order, as Linux
///   queues underweight members at the head of its list; the walk stops once
///   no member is underweight. It returns the next time a bucket could
///   migrate.
/// * [`Selector::set_members`] recomputes the wants, orphans the buckets of
///   departed members (keeping every other bucket's owner), records when the
///   group became unbalanced (an already unbalanced group keeps its original
///   time) and then runs upkeep at `now`.
///
/// Activity is shared: the last-used times live in one `Arc<[AtomicU64]>`
/// shared by every clone. The bucket count never changes, so when the control
/// plane clones the published selector, changes the clone and publishes it,
/// the activity that the data plane keeps noting on the old published copy
/// ([`Selector::note_activity`], a relaxed store) is what the clone's upkeep
/// sees. Selectors built separately with [`Resilient::new`] never share.
///
/// `select` is one remainder (by multiplication) and two loads; it never
/// allocates. Upkeep is O(buckets + members).
#[derive(Clone)]
pub struct Resilient {
    members: Vec<Member>,
    params: ResilientParams,
    modulus: FastMod,
    /// Owning member index per bucket, or `ORPHAN`.
    owner: Vec<u32>,
    /// Last-used time per bucket, shared by all clones.
    used: Arc<[AtomicU64]>,
    /// Buckets held per member (group order).
    count: Vec<u32>,
    /// Buckets wanted per member (group order).
    wants: Vec<u32>,
    /// When the group last became unbalanced; `Some` iff some member is
    /// underweight.
    unbalanced_since: Option<Nanos>,
}

impl Resilient {
    /// Build a group with `params.resilient.buckets` buckets (1..=65535),
    /// filled at `now` in index order (member 0 takes the first buckets it
    /// wants, then member 1, ...).
    pub fn new(
        params: &SelectorParams,
        members: &[Member],
        now: Nanos,
    ) -> Result<Self, SelectError> {
        let rp = params.resilient;
        if rp.buckets == 0 || rp.buckets > MAX_BUCKETS {
            return Err(SelectError::InvalidParam(format!(
                "resilient buckets must be 1..={MAX_BUCKETS}, {} given",
                rp.buckets
            )));
        }
        validate_members(Algorithm::Resilient, members)?;
        let b = rp.buckets as usize;
        let mut s = Resilient {
            members: Vec::new(),
            params: rp,
            modulus: FastMod::new(rp.buckets),
            owner: vec![ORPHAN; b],
            used: (0..b).map(|_| AtomicU64::new(now)).collect(),
            count: Vec::new(),
            wants: Vec::new(),
            unbalanced_since: None,
        };
        s.set_members(members, now)?;
        Ok(s)
    }

    /// The resilient parameters this group was built with.
    pub fn params(&self) -> &ResilientParams {
        &self.params
    }

    /// Number of buckets (fixed for the group's life).
    pub fn bucket_count(&self) -> u32 {
        self.params.buckets
    }

    /// The bucket a flow hash falls in (`hash % buckets`).
    #[inline]
    pub fn bucket_index(&self, hash: u32) -> u32 {
        self.modulus.rem(hash)
    }

    /// The member a bucket sends its flows to; `None` for an index out of
    /// range or an orphaned bucket (only possible while the group is empty).
    pub fn bucket_owner(&self, index: usize) -> Option<MemberId> {
        let o = *self.owner.get(index)?;
        self.members.get(o as usize).map(|m| m.id)
    }

    /// When a bucket was last used (or assigned), as seen by all clones.
    pub fn bucket_last_used(&self, index: usize) -> Option<Nanos> {
        self.used.get(index).map(|u| u.load(Ordering::Relaxed))
    }

    /// Buckets held by each member, aligned with [`Selector::members`].
    pub fn buckets_per_member(&self) -> &[u32] {
        &self.count
    }

    /// Buckets each member wants, aligned with [`Selector::members`].
    pub fn wanted_buckets(&self) -> &[u32] {
        &self.wants
    }

    /// True when no member holds fewer buckets than it wants.
    pub fn is_balanced(&self) -> bool {
        self.unbalanced_since.is_none()
    }

    /// When the group became unbalanced, if it is.
    pub fn unbalanced_since(&self) -> Option<Nanos> {
        self.unbalanced_since
    }

    fn any_underweight(&self) -> bool {
        self.count.iter().zip(&self.wants).any(|(c, w)| c < w)
    }

    /// Linux's `nh_res_group_rebalance`: wanted buckets per member.
    fn compute_wants(&mut self) {
        let buckets = u128::from(self.params.buckets);
        let total: u128 = self.members.iter().map(|m| u128::from(m.weight)).sum();
        let mut w = 0u128;
        let mut prev = 0u32;
        self.wants.clear();
        for m in &self.members {
            w += u128::from(m.weight);
            // DIV_ROUND_CLOSEST(buckets * w, total) <= buckets <= 65535.
            let upper = ((buckets * w + total / 2) / total) as u32;
            self.wants.push(upper - prev);
            prev = upper;
        }
    }

    #[inline]
    fn is_idle(&self, bucket: usize, now: Nanos) -> bool {
        let last = self.used[bucket].load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.params.idle_timer
    }

    /// The earliest time an overweight bucket could migrate, for an
    /// unbalanced group.
    fn next_deadline(&self) -> Option<Nanos> {
        let since = self.unbalanced_since?;
        let mut deadline = if self.params.unbalanced_timer > 0 {
            // Forcing needs `now` strictly past the unbalanced point.
            since
                .saturating_add(self.params.unbalanced_timer)
                .saturating_add(1)
        } else {
            Nanos::MAX
        };
        for (b, &o) in self.owner.iter().enumerate() {
            let o = o as usize;
            if o < self.members.len() && self.count[o] > self.wants[o] {
                let last = self.used[b].load(Ordering::Relaxed);
                deadline = deadline.min(last.saturating_add(self.params.idle_timer));
            }
        }
        Some(deadline)
    }
}

impl Selector for Resilient {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Resilient
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        let o = *self.owner.get(self.modulus.rem(hash) as usize)?;
        self.members.get(o as usize).map(|m| m.id)
    }

    /// Marks the flow's bucket as used at `now` (a relaxed store into the
    /// activity shared by all clones).
    #[inline]
    fn note_activity(&self, hash: u32, now: Nanos) {
        if let Some(u) = self.used.get(self.modulus.rem(hash) as usize) {
            u.store(now, Ordering::Relaxed);
        }
    }

    fn set_members(&mut self, members: &[Member], now: Nanos) -> Result<(), SelectError> {
        validate_members(Algorithm::Resilient, members)?;
        let was_unbalanced = self.unbalanced_since.is_some();

        // Old member index -> new member index (or ORPHAN).
        let new_index: HashMap<MemberId, u32> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id, i as u32))
            .collect();
        let remap: Vec<u32> = self
            .members
            .iter()
            .map(|m| new_index.get(&m.id).copied().unwrap_or(ORPHAN))
            .collect();
        self.members = members.to_vec();
        self.count = vec![0; members.len()];
        for o in &mut self.owner {
            let moved = remap.get(*o as usize).copied().unwrap_or(ORPHAN);
            *o = moved;
            if let Some(c) = self.count.get_mut(moved as usize) {
                *c += 1;
            }
        }
        self.compute_wants();

        self.unbalanced_since = if self.any_underweight() {
            match self.unbalanced_since {
                Some(since) if was_unbalanced => Some(since),
                _ => Some(now),
            }
        } else {
            None
        };
        self.upkeep(now);
        Ok(())
    }

    fn upkeep(&mut self, now: Nanos) -> Option<Nanos> {
        let n = self.members.len();
        let forced = self.params.unbalanced_timer > 0
            && self
                .unbalanced_since
                .is_some_and(|since| now.saturating_sub(since) > self.params.unbalanced_timer);
        // One past the last member that may still be underweight (Linux hands
        // buckets to the last underweight member first). Members after it
        // never become underweight again during the walk: buckets only leave
        // overweight members, and only while they stay at or above their wants.
        let mut end = n;
        for b in 0..self.owner.len() {
            while end > 0 && self.count[end - 1] >= self.wants[end - 1] {
                end -= 1;
            }
            if end == 0 {
                break;
            }
            let target = end - 1;
            let o = self.owner[b] as usize;
            let migrate = if o >= n {
                true
            } else {
                self.count[o] > self.wants[o] && (forced || self.is_idle(b, now))
            };
            if migrate {
                if o < n {
                    self.count[o] -= 1;
                }
                self.owner[b] = target as u32;
                self.count[target] += 1;
                self.used[b].store(now, Ordering::Relaxed);
            }
        }
        if !self.any_underweight() {
            self.unbalanced_since = None;
        }
        self.next_deadline()
    }
}

impl fmt::Debug for Resilient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilient")
            .field("members", &self.members)
            .field("params", &self.params)
            .field("buckets_per_member", &self.count)
            .field("wanted_buckets", &self.wants)
            .field("unbalanced_since", &self.unbalanced_since)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    fn params(buckets: u32, idle_s: u64, unbalanced_s: u64) -> SelectorParams {
        SelectorParams {
            resilient: ResilientParams {
                buckets,
                idle_timer: idle_s * S,
                unbalanced_timer: unbalanced_s * S,
            },
            ..SelectorParams::default()
        }
    }

    fn members(ids: &[u32]) -> Vec<Member> {
        ids.iter().map(|&i| Member::new(i)).collect()
    }

    fn owners(r: &Resilient) -> Vec<Option<MemberId>> {
        (0..r.bucket_count() as usize)
            .map(|b| r.bucket_owner(b))
            .collect()
    }

    fn touch_all(r: &Resilient, now: Nanos) {
        for h in 0..r.bucket_count() {
            r.note_activity(h, now);
        }
    }

    #[test]
    fn bucket_count_outside_1_to_65535_is_rejected() {
        for b in [0, MAX_BUCKETS + 1, u32::MAX] {
            let e = Resilient::new(&params(b, 120, 0), &members(&[1]), 0).unwrap_err();
            assert!(matches!(e, SelectError::InvalidParam(_)), "{e:?}");
        }
        assert!(Resilient::new(&params(1, 120, 0), &members(&[1, 2]), 0).is_ok());
        assert!(Resilient::new(&params(MAX_BUCKETS, 120, 0), &members(&[1, 2]), 0).is_ok());
    }

    #[test]
    fn initial_fill_serves_the_last_member_first_and_is_stamped_now() {
        let r = Resilient::new(&params(10, 120, 0), &members(&[7, 8, 9]), 5 * S).unwrap();
        // wants: round(10/3)=3, round(20/3)=7 -> 4, 10 -> 3.
        assert_eq!(r.wanted_buckets(), &[3, 4, 3]);
        assert_eq!(r.buckets_per_member(), &[3, 4, 3]);
        // Linux queues underweight members at the head of its list, so the
        // last member takes the first buckets.
        let o: Vec<_> = owners(&r).into_iter().map(Option::unwrap).collect();
        assert_eq!(o, [9, 9, 9, 8, 8, 8, 8, 7, 7, 7]);
        assert!(r.is_balanced());
        assert!((0..10).all(|b| r.bucket_last_used(b) == Some(5 * S)));
        assert_eq!(r.select(13), Some(8)); // 13 % 10 = bucket 3
    }

    #[test]
    fn removing_one_of_n_moves_exactly_its_buckets() {
        let ids: Vec<u32> = (1..=8).collect();
        let mut r = Resilient::new(&params(128, 120, 0), &members(&ids), 0).unwrap();
        let before = owners(&r);
        let remaining: Vec<u32> = ids.iter().copied().filter(|&i| i != 4).collect();
        r.set_members(&members(&remaining), S).unwrap();
        let after = owners(&r);
        for (b, (x, y)) in before.iter().zip(&after).enumerate() {
            if *x == Some(4) {
                assert_ne!(*y, Some(4), "bucket {b}");
                assert!(y.is_some());
            } else {
                assert_eq!(x, y, "bucket {b} moved although its member stayed");
            }
        }
        assert!(r.is_balanced());
        assert_eq!(r.buckets_per_member(), r.wanted_buckets());
    }

    #[test]
    fn adding_a_member_while_buckets_are_busy_waits_for_them_to_go_idle() {
        let mut r = Resilient::new(&params(128, 10, 0), &members(&[1, 2, 3, 4]), 0).unwrap();
        let before = owners(&r);
        touch_all(&r, 100 * S);
        r.set_members(&members(&[1, 2, 3, 4, 5]), 100 * S + 1)
            .unwrap();
        assert_eq!(owners(&r), before, "busy buckets moved");
        assert!(!r.is_balanced());
        assert_eq!(r.unbalanced_since(), Some(100 * S + 1));
        // Next chance: the buckets go idle 10 s after their last use.
        assert_eq!(r.upkeep(110 * S - 1), Some(110 * S));
        assert_eq!(owners(&r), before);

        assert_eq!(r.upkeep(110 * S), None);
        let after = owners(&r);
        let moved: Vec<_> = before
            .iter()
            .zip(&after)
            .filter(|(x, y)| x != y)
            .map(|(_, y)| *y)
            .collect();
        // Member 5 wants 128 - round(128 * 4 / 5) = 26 buckets; exactly those move.
        assert_eq!(moved.len(), 26);
        assert!(moved.iter().all(|y| *y == Some(5)));
        assert!(r.is_balanced());
        assert_eq!(r.buckets_per_member(), r.wanted_buckets());
        // A freshly migrated bucket is stamped with the migration time.
        let b = after.iter().position(|y| *y == Some(5)).unwrap();
        assert_eq!(r.bucket_last_used(b), Some(110 * S));
    }

    #[test]
    fn only_idle_buckets_of_overweight_members_migrate() {
        let mut r = Resilient::new(&params(8, 10, 0), &members(&[1, 2]), 0).unwrap();
        // Buckets 0..4 -> 2, 4..8 -> 1 (the last member fills first). Keep
        // buckets 0, 1, 4 and 5 busy.
        for h in [0, 1, 4, 5] {
            r.note_activity(h, 20 * S);
        }
        // At 25 s, adding 3 (wants 3; 1 wants 3, 2 wants 2): idle buckets 2, 3
        // (member 2, two over) and 6, 7 (member 1, one over) are candidates;
        // in index order 2, 3 and 6 move, then 3 is balanced.
        r.set_members(&members(&[1, 2, 3]), 25 * S).unwrap();
        let o: Vec<_> = owners(&r).into_iter().map(Option::unwrap).collect();
        assert_eq!(o, [2, 2, 3, 3, 1, 1, 3, 1]);
        assert!(r.is_balanced());
    }

    #[test]
    fn the_unbalanced_timer_forces_busy_buckets_to_migrate() {
        let mut r = Resilient::new(&params(64, 120, 30), &members(&[1, 2]), 0).unwrap();
        let before = owners(&r);
        touch_all(&r, S);
        let next = r.upkeep(S);
        assert_eq!(next, None);
        r.set_members(&members(&[1, 2, 3]), S).unwrap();
        assert_eq!(owners(&r), before);
        // Idle points are 121 s; the unbalanced deadline comes first: Linux
        // forces only strictly after 1 s + 30 s (time_after).
        assert_eq!(r.upkeep(2 * S), Some(31 * S + 1));
        for t in 2..=31 {
            touch_all(&r, t * S);
            r.upkeep(t * S);
            assert_eq!(owners(&r), before, "moved at {t} s");
        }
        touch_all(&r, 31 * S + 1);
        assert_eq!(r.upkeep(31 * S + 1), None);
        assert!(r.is_balanced());
        assert_eq!(r.buckets_per_member(), &[21, 22, 21]);
        let moved = before
            .iter()
            .zip(owners(&r))
            .filter(|(x, y)| **x != *y)
            .count();
        assert_eq!(moved, 21);
    }

    #[test]
    fn an_already_unbalanced_group_keeps_its_unbalanced_since() {
        let mut r = Resilient::new(&params(64, 120, 0), &members(&[1, 2]), 0).unwrap();
        r.set_members(&members(&[1, 2, 3]), S).unwrap();
        assert_eq!(r.unbalanced_since(), Some(S));
        r.set_members(&members(&[1, 2, 3, 4]), 2 * S).unwrap();
        assert_eq!(r.unbalanced_since(), Some(S));
        // Removing 3 and 4 balances the group (orphans are re-homed at once).
        r.set_members(&members(&[1, 2]), 3 * S).unwrap();
        assert!(r.is_balanced());
        r.set_members(&members(&[1, 2, 5]), 4 * S).unwrap();
        assert_eq!(r.unbalanced_since(), Some(4 * S));
    }

    #[test]
    fn weights_are_honoured_within_one_bucket() {
        let m = [
            Member::weighted(1, 1),
            Member::weighted(2, 2),
            Member::weighted(3, 3),
            Member::weighted(4, 7),
        ];
        let r = Resilient::new(&params(100, 120, 0), &m, 0).unwrap();
        let total = 13.0;
        for (c, mem) in r.buckets_per_member().iter().zip(&m) {
            let exact = 100.0 * f64::from(mem.weight) / total;
            assert!((f64::from(*c) - exact).abs() < 1.0, "{c} vs {exact}");
        }
        assert_eq!(r.buckets_per_member().iter().sum::<u32>(), 100);
    }

    #[test]
    fn maximal_weights_do_not_overflow() {
        let m: Vec<_> = (0..100)
            .map(|i| Member::weighted(i, u32::MAX - i))
            .collect();
        let r = Resilient::new(&params(MAX_BUCKETS, 120, 0), &m, 0).unwrap();
        assert_eq!(r.buckets_per_member().iter().sum::<u32>(), MAX_BUCKETS);
        assert!(r.buckets_per_member().iter().all(|&c| c == 655 || c == 656));
    }

    #[test]
    fn activity_noted_on_one_clone_is_seen_by_the_others() {
        let mut writer = Resilient::new(&params(16, 10, 0), &members(&[1, 2]), 0).unwrap();
        let published = writer.clone();
        // The data plane forwards on the published copy...
        for h in 0..16 {
            published.note_activity(h, 50 * S);
        }
        assert_eq!(writer.bucket_last_used(3), Some(50 * S));
        // ...so the writer's change at 55 s sees every bucket busy.
        writer.set_members(&members(&[1, 2, 3]), 55 * S).unwrap();
        assert_eq!(owners(&writer), owners(&published));
        assert!(!writer.is_balanced());
        // Once idle, they move; the published copy sees the migration stamps.
        writer.upkeep(60 * S);
        assert!(writer.is_balanced());
        let b = (0..16)
            .find(|&b| writer.bucket_owner(b) == Some(3))
            .unwrap();
        assert_eq!(published.bucket_last_used(b), Some(60 * S));
    }

    #[test]
    fn idle_timer_zero_makes_every_bucket_idle() {
        let mut r = Resilient::new(&params(32, 0, 0), &members(&[1, 2, 3]), 0).unwrap();
        touch_all(&r, 10 * S);
        r.set_members(&members(&[1, 2, 3, 4]), 10 * S).unwrap();
        assert!(r.is_balanced());
        assert_eq!(r.buckets_per_member(), r.wanted_buckets());
    }

    #[test]
    fn empty_group_orphans_everything_and_refills_when_members_return() {
        let mut r = Resilient::new(&params(16, 120, 0), &[], 0).unwrap();
        assert_eq!(r.select(3), None);
        assert!(r.is_balanced());
        assert_eq!(r.upkeep(S), None);
        r.set_members(&members(&[1, 2]), S).unwrap();
        assert!((0..16).all(|h| r.select(h).is_some()));
        r.set_members(&[], 2 * S).unwrap();
        assert!((0..16).all(|h| r.select(h).is_none()));
        r.set_members(&members(&[3]), 3 * S).unwrap();
        assert!((0..16).all(|h| r.select(h) == Some(3)));
    }

    #[test]
    fn a_member_wanting_no_buckets_is_never_selected() {
        let m = [Member::weighted(1, 1), Member::weighted(2, 1000)];
        let r = Resilient::new(&params(8, 120, 0), &m, 0).unwrap();
        assert_eq!(r.wanted_buckets(), &[0, 8]);
        assert!((0..8).all(|h| r.select(h) == Some(2)));
    }
}
