//! Edits of real bytes for property tests (included with `#[path]`): what a broken or
//! hostile peer, or a damaged file, does to something valid.

use proptest::prelude::*;

/// One edit of a byte string.
#[derive(Clone, Debug)]
pub enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    Repeat(usize, usize),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Remove(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..32).prop_map(|(i, n)| Edit::Repeat(i, n)),
    ]
}

/// Apply `e` to `v` (positions taken modulo its length).
pub fn apply(v: &mut Vec<u8>, e: &Edit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match e {
        Edit::Flip(i, b) if !v.is_empty() => {
            let k = at(*i, v.len());
            v[k] ^= b | 1;
        }
        Edit::Insert(i, b) => {
            let k = at(*i, v.len() + 1);
            v.splice(k..k, b.iter().copied());
        }
        Edit::Remove(i, n) if !v.is_empty() => {
            let k = at(*i, v.len());
            v.drain(k..(k + n).min(v.len()));
        }
        Edit::Truncate(i) => v.truncate(at(*i, v.len() + 1)),
        Edit::Repeat(i, n) if !v.is_empty() => {
            let k = at(*i, v.len());
            let chunk: Vec<u8> = v[k..(k + n).min(v.len())].to_vec();
            v.splice(k..k, chunk);
        }
        _ => {}
    }
}

/// 1 to 5 edits, each for one of a conversation's two sides.
#[allow(dead_code)]
pub fn edits() -> impl Strategy<Value = Vec<(bool, Edit)>> {
    proptest::collection::vec((any::<bool>(), edit()), 1..6)
}

/// Apply `edits` to a conversation: `true` edits `a`, `false` edits `b`.
#[allow(dead_code)]
pub fn apply_both(edits: &[(bool, Edit)], a: &mut Vec<u8>, b: &mut Vec<u8>) {
    for (first, e) in edits {
        apply(if *first { &mut *a } else { &mut *b }, e);
    }
}
