//! Identities and the label index.
//!
//! An identity is one distinct (namespace, label set). Policy is resolved per identity,
//! so scaling a Deployment from 1 to 1,000 replicas adds addresses, not rules: all
//! replicas share one identity. Identities are small integers so that "which
//! identities does this selector select" is a compact bitmap.

use bulkhead_model::{Labels, Selector};
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

pub type IdentityId = u32;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    pub namespace: String,
    pub labels: Labels,
}

#[derive(Clone, Debug)]
struct Slot {
    key: IdentityKey,
    /// How many workloads have this identity.
    refs: u32,
    /// Bumped every time the slot is reused, so caches keyed by id can tell.
    generation: u32,
}

/// Interns identities and indexes their labels.
#[derive(Clone, Debug, Default)]
pub struct IdentityTable {
    by_key: FxHashMap<IdentityKey, IdentityId>,
    slots: Vec<Option<Slot>>,
    free: Vec<IdentityId>,
    generations: Vec<u32>,
    live: RoaringBitmap,
    index: LabelIndex,
}

/// The result of taking a reference on an identity.
pub enum Acquired {
    Existing(IdentityId),
    New(IdentityId),
}

impl IdentityTable {
    /// Take a reference on the identity of (namespace, labels), creating it if needed.
    pub fn acquire(&mut self, namespace: &str, labels: &Labels) -> Acquired {
        let key = IdentityKey {
            namespace: namespace.to_string(),
            labels: labels.clone(),
        };
        if let Some(&id) = self.by_key.get(&key) {
            if let Some(slot) = self.slots[id as usize].as_mut() {
                slot.refs += 1;
            }
            return Acquired::Existing(id);
        }
        let id = self.free.pop().unwrap_or(self.slots.len() as IdentityId);
        if id as usize == self.slots.len() {
            self.slots.push(None);
            self.generations.push(0);
        }
        self.generations[id as usize] = self.generations[id as usize].wrapping_add(1);
        self.index.insert(id, &key);
        self.by_key.insert(key.clone(), id);
        self.slots[id as usize] = Some(Slot {
            key,
            refs: 1,
            generation: self.generations[id as usize],
        });
        self.live.insert(id);
        Acquired::New(id)
    }

    /// Drop a reference; returns true when the identity is gone (its id may be reused).
    pub fn release(&mut self, id: IdentityId) -> bool {
        let Some(slot) = self.slots.get_mut(id as usize).and_then(Option::as_mut) else {
            return false;
        };
        slot.refs -= 1;
        if slot.refs > 0 {
            return false;
        }
        let key = slot.key.clone();
        self.slots[id as usize] = None;
        self.by_key.remove(&key);
        self.index.remove(id, &key);
        self.live.remove(id);
        self.free.push(id);
        true
    }

    /// The identity of a (namespace, labels) key, if it exists.
    pub fn id_of(&self, key: &IdentityKey) -> Option<IdentityId> {
        self.by_key.get(key).copied()
    }

    pub fn key(&self, id: IdentityId) -> Option<&IdentityKey> {
        self.slots.get(id as usize)?.as_ref().map(|s| &s.key)
    }

    pub fn generation(&self, id: IdentityId) -> u32 {
        self.slots
            .get(id as usize)
            .and_then(Option::as_ref)
            .map_or(0, |s| s.generation)
    }

    pub fn refs(&self, id: IdentityId) -> u32 {
        self.slots
            .get(id as usize)
            .and_then(Option::as_ref)
            .map_or(0, |s| s.refs)
    }

    /// All live identities.
    pub fn live(&self) -> &RoaringBitmap {
        &self.live
    }

    pub fn len(&self) -> usize {
        self.live.len() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// One past the highest id ever handed out (the size of per-identity tables).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn index(&self) -> &LabelIndex {
        &self.index
    }
}

#[derive(Clone, Debug, Default)]
struct KeyPosting {
    /// Identities that have the key, whatever the value.
    any: RoaringBitmap,
    by_value: FxHashMap<String, RoaringBitmap>,
}

/// Inverted index: label key -> value -> identities, and namespace -> identities.
/// Resolving a selector over all identities is then bitmap algebra on posting lists,
/// not one evaluation per identity.
#[derive(Clone, Debug, Default)]
pub struct LabelIndex {
    keys: FxHashMap<String, KeyPosting>,
    namespaces: FxHashMap<String, RoaringBitmap>,
}

impl LabelIndex {
    fn insert(&mut self, id: IdentityId, key: &IdentityKey) {
        self.namespaces
            .entry(key.namespace.clone())
            .or_default()
            .insert(id);
        for (k, v) in key.labels.iter() {
            let p = self.keys.entry(k.to_string()).or_default();
            p.any.insert(id);
            p.by_value.entry(v.to_string()).or_default().insert(id);
        }
    }

    fn remove(&mut self, id: IdentityId, key: &IdentityKey) {
        if let Some(b) = self.namespaces.get_mut(&key.namespace) {
            b.remove(id);
            if b.is_empty() {
                self.namespaces.remove(&key.namespace);
            }
        }
        for (k, v) in key.labels.iter() {
            let Some(p) = self.keys.get_mut(k) else {
                continue;
            };
            p.any.remove(id);
            if let Some(b) = p.by_value.get_mut(v) {
                b.remove(id);
                if b.is_empty() {
                    p.by_value.remove(v);
                }
            }
            if p.any.is_empty() {
                self.keys.remove(k);
            }
        }
    }

    /// Identities in namespace `ns`.
    pub fn namespace(&self, ns: &str) -> Option<&RoaringBitmap> {
        self.namespaces.get(ns)
    }

    /// The identities, among `universe`, whose labels match `sel`.
    pub fn eval(&self, sel: &Selector, universe: &RoaringBitmap) -> RoaringBitmap {
        let empty = RoaringBitmap::new();
        let value = |k: &str, v: &str| -> &RoaringBitmap {
            self.keys
                .get(k)
                .and_then(|p| p.by_value.get(v))
                .unwrap_or(&empty)
        };
        // Identities whose value of `k` satisfies `pred`.
        let values_where = |k: &str, pred: &dyn Fn(&str) -> bool| -> RoaringBitmap {
            let mut out = RoaringBitmap::new();
            if let Some(p) = self.keys.get(k) {
                for (v, b) in &p.by_value {
                    if pred(v) {
                        out |= b;
                    }
                }
            }
            out
        };
        match sel {
            Selector::All => universe.clone(),
            Selector::Eq(k, v) => value(k, v) & universe,
            Selector::Ne(k, v) => universe - value(k, v),
            Selector::In(k, vs) => {
                let mut out = RoaringBitmap::new();
                for v in vs {
                    out |= value(k, v);
                }
                out & universe
            }
            Selector::NotIn(k, vs) => {
                let mut out = universe.clone();
                for v in vs {
                    out -= value(k, v);
                }
                out
            }
            Selector::Has(k) => self
                .keys
                .get(k)
                .map_or_else(RoaringBitmap::new, |p| &p.any & universe),
            Selector::StartsWith(k, s) => {
                values_where(k, &|v| v.starts_with(s.as_str())) & universe
            }
            Selector::EndsWith(k, s) => values_where(k, &|v| v.ends_with(s.as_str())) & universe,
            Selector::Contains(k, s) => values_where(k, &|v| v.contains(s.as_str())) & universe,
            Selector::Not(e) => universe - self.eval(e, universe),
            Selector::And(es) => {
                let mut out = universe.clone();
                for e in es {
                    out = self.eval(e, &out);
                    if out.is_empty() {
                        break;
                    }
                }
                out
            }
            Selector::Or(es) => {
                let mut out = RoaringBitmap::new();
                for e in es {
                    out |= self.eval(e, universe);
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_model::selector::parse;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn replicas_share_an_identity_and_ids_are_reused() {
        let mut t = IdentityTable::default();
        let l = labels(&[("app", "web")]);
        let Acquired::New(a) = t.acquire("shop", &l) else {
            panic!("first acquire creates")
        };
        for _ in 0..999 {
            assert!(matches!(t.acquire("shop", &l), Acquired::Existing(x) if x == a));
        }
        assert_eq!(t.len(), 1);
        assert_eq!(t.refs(a), 1000);
        for _ in 0..999 {
            assert!(!t.release(a));
        }
        let g = t.generation(a);
        assert!(t.release(a));
        assert!(t.is_empty());
        let Acquired::New(b) = t.acquire("other", &l) else {
            panic!()
        };
        assert_eq!(a, b, "freed ids are reused");
        assert_ne!(g, t.generation(b), "with a new generation");
    }

    fn arb_labels() -> impl Strategy<Value = Labels> {
        prop::collection::btree_map(
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["1", "2", "x"]),
            0..3,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        /// Bitmap evaluation over the index agrees with evaluating each identity.
        #[test]
        fn index_eval_agrees_with_direct_eval(sets in prop::collection::vec(arb_labels(), 1..12), which in 0usize..14) {
            let selectors = [
                "all()", "a == \"1\"", "a != \"1\"", "a in {\"1\", \"x\"}", "a not in {\"1\"}",
                "has(b)", "!has(b)", "a == \"1\" && b != \"2\"", "a == \"1\" || has(c)",
                "!(a == \"1\" || b == \"x\")", "a starts with \"x\"", "c ends with \"2\"",
                "b contains \"x\" || !has(a)", "a in {\"1\"} && b not in {\"x\"} && has(c)",
            ];
            let sel = parse(selectors[which]).unwrap();
            let mut t = IdentityTable::default();
            let mut ids = Vec::new();
            for l in &sets {
                let id = match t.acquire("ns", l) { Acquired::New(i) | Acquired::Existing(i) => i };
                ids.push((id, l.clone()));
            }
            let bits = t.index().eval(&sel, t.live());
            for (id, l) in ids {
                prop_assert_eq!(bits.contains(id), sel.matches(&l), "{} on {}", sel, l);
            }
        }
    }
}
