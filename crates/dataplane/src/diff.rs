//! Two rulesets -> one atomic nftables transaction that turns the first into the second.
//!
//! Only what differs is touched: set elements are added and deleted one by one; a chain
//! is rewritten (flushed and refilled, inside the same transaction) only when the hash of
//! its rules changed. Commands are ordered so that nothing is referenced before it exists
//! or deleted while still referenced; nft applies the whole batch or nothing, so no packet
//! ever sees a half-programmed table.

use std::borrow::Cow;
use std::collections::BTreeSet;

use nftables::schema::{
    Chain, Element, FlushObject, Map, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag,
    SetTypeValue, Table,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::names::TABLE;
use crate::ruleset::{ChainState, Elem, Hook, Ruleset, SetKind};

fn t() -> Cow<'static, str> {
    Cow::Borrowed(TABLE)
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: t(),
        handle: None,
    }
}

fn chain_obj(name: &str, c: Option<&ChainState>) -> Chain<'static> {
    let hook = c.and_then(|c| c.hook);
    Chain {
        family: NfFamily::INet,
        table: t(),
        name: Cow::Owned(name.to_string()),
        newname: None,
        handle: None,
        _type: hook.map(|_| NfChainType::Filter),
        hook: hook.map(|h| match h {
            Hook::Prerouting | Hook::Raw => NfHook::Prerouting,
            Hook::Forward => NfHook::Forward,
            Hook::Input => NfHook::Input,
            Hook::Output => NfHook::Output,
        }),
        prio: hook.map(Hook::priority),
        dev: None,
        policy: hook.map(|_| NfChainPolicy::Accept),
    }
}

/// A set or map object (for add, delete, flush).
fn set_obj(name: &str, kind: SetKind) -> NfListObject<'static> {
    let flags = if kind.is_interval() {
        Some([SetFlag::Interval].into_iter().collect())
    } else if crate::names::is_dns_set(name) {
        // The DNS path's elements carry the answer's TTL; the kernel expires them.
        Some([SetFlag::Timeout].into_iter().collect())
    } else {
        None
    };
    if kind.is_map() {
        // The data type is patched to `verdict` for verdict maps when serialised (see
        // `Transaction`): the crate's set types have no verdict type.
        let m = Map {
            family: NfFamily::INet,
            table: t(),
            name: Cow::Owned(name.to_string()),
            handle: None,
            set_type: kind.key_type(),
            map: SetTypeValue::Single(nftables::schema::SetType::Mark),
            policy: None,
            flags,
            elem: None,
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        };
        NfListObject::Map(Box::new(m))
    } else {
        NfListObject::Set(Box::new(Set {
            family: NfFamily::INet,
            table: t(),
            name: Cow::Owned(name.to_string()),
            handle: None,
            set_type: kind.key_type(),
            policy: None,
            flags,
            elem: None,
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        }))
    }
}

fn elements(name: &str, elems: &BTreeSet<Elem>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: NfFamily::INet,
        table: t(),
        name: Cow::Owned(name.to_string()),
        elem: Cow::Owned(elems.iter().map(Elem::to_expr).collect()),
    })
}

fn rule(
    chain: &str,
    i: usize,
    c: &ChainState,
    stmts: &[nftables::stmt::Statement<'static>],
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: t(),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(stmts.to_vec()),
        handle: None,
        index: None,
        // The first rule carries the chain's content hash: what an agent that restarts
        // compares to decide whether the chain needs rewriting.
        comment: (i == 0).then(|| Cow::Owned(format!("bh:{:016x}", c.hash.unwrap_or(0)))),
    })
}

/// One atomic batch of nftables commands: applied by `nft -j -f -` (as JSON) or sent
/// as one netlink batch (see [`crate::batch`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transaction {
    pub cmds: Vec<NfCmd<'static>>,
    /// Maps whose data type is `verdict` (the crate's set types have none).
    pub verdict_maps: BTreeSet<String>,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// `{"nftables": [...]}` for `nft -j -f -`.
    pub fn to_json(&self) -> String {
        let commands: Vec<serde_json::Value> = self
            .cmds
            .iter()
            .map(|c| {
                let mut v =
                    serde_json::to_value(NfObject::CmdObject(c.clone())).unwrap_or_default();
                // `type mark : verdict` for verdict maps.
                if let Some(obj) = v.as_object_mut() {
                    for body in obj.values_mut() {
                        if let Some(map) = body.get_mut("map") {
                            let is_vmap = map
                                .get("name")
                                .and_then(|n| n.as_str())
                                .is_some_and(|n| self.verdict_maps.contains(n));
                            if is_vmap && map.get("map").is_some() {
                                map["map"] = serde_json::Value::String("verdict".into());
                            }
                        }
                    }
                }
                v
            })
            .collect();
        serde_json::json!({ "nftables": commands }).to_string()
    }

    fn from_cmds(cmds: Vec<NfCmd<'static>>, verdict_maps: &BTreeSet<String>) -> Transaction {
        Transaction {
            cmds,
            verdict_maps: verdict_maps.clone(),
        }
    }
}

/// The commands that turn `old` (observed, or the previous desired state) into `new`.
pub fn diff(old: &Ruleset, new: &Ruleset) -> Transaction {
    let mut cmds: Vec<NfCmd<'static>> = Vec::new();
    if !old.exists {
        cmds.push(NfCmd::Add(NfListObject::Table(table())));
    }
    // 1. New sets and chains (empty), so that everything can be referenced.
    for (name, s) in &new.sets {
        match old.sets.get(name) {
            Some(o) if o.kind == s.kind => {}
            _ => cmds.push(NfCmd::Add(set_obj(name, s.kind))),
        }
    }
    for (name, c) in &new.chains {
        if !old.chains.contains_key(name) {
            cmds.push(NfCmd::Add(NfListObject::Chain(chain_obj(name, Some(c)))));
        }
    }
    // 2. Elements to add (sets the kernel holds unreadable elements in are refilled).
    let mut deletes: Vec<NfCmd<'static>> = Vec::new();
    let none = BTreeSet::new();
    for (name, s) in &new.sets {
        // The elements of DNS sets are the DNS path's (learnt at run time, expired by
        // the kernel): not in any desired state, never added, deleted or flushed here.
        if crate::names::is_dns_set(name) {
            continue;
        }
        let wanted: &BTreeSet<Elem> = s.elems.as_deref().unwrap_or(&none);
        let current = old.sets.get(name).filter(|o| o.kind == s.kind);
        let (add, del): (BTreeSet<Elem>, BTreeSet<Elem>) = match current.map(|o| &o.elems) {
            None => (wanted.clone(), BTreeSet::new()),
            Some(None) => {
                cmds.push(NfCmd::Flush(flush_set(name, s.kind)));
                (wanted.clone(), BTreeSet::new())
            }
            // Most sets are unchanged: the same shared set (carried over), or one
            // linear comparison; nothing copied.
            Some(Some(have))
                if s.elems
                    .as_ref()
                    .is_some_and(|w| std::sync::Arc::ptr_eq(have, w))
                    || **have == *wanted =>
            {
                continue;
            }
            Some(Some(have)) => (
                wanted.difference(have).cloned().collect(),
                have.difference(wanted).cloned().collect::<BTreeSet<Elem>>(),
            ),
        };
        // A verdict-map entry whose target changed must be deleted before it is re-added.
        let (add, del) = split_map_updates(s.kind, add, del, &mut cmds, name);
        if !add.is_empty() {
            cmds.push(NfCmd::Add(elements(name, &add)));
        }
        if !del.is_empty() {
            deletes.push(NfCmd::Delete(elements(name, &del)));
        }
    }
    // 3. Chains whose rules changed: flush and refill.
    for (name, c) in &new.chains {
        let unchanged = old
            .chains
            .get(name)
            .is_some_and(|o| o.hash.is_some() && o.hash == c.hash);
        if unchanged {
            continue;
        }
        if old.chains.contains_key(name) {
            cmds.push(NfCmd::Flush(FlushObject::Chain(chain_obj(name, None))));
        }
        for (i, stmts) in c.rules.iter().enumerate() {
            cmds.push(NfCmd::Add(rule(name, i, c, stmts)));
        }
    }
    // 4. Elements to delete (after the rules that used them are gone or replaced).
    cmds.extend(deletes);
    // 5. Chains to remove: flush them all first (they may jump to each other).
    let gone: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &gone {
        cmds.push(NfCmd::Flush(FlushObject::Chain(chain_obj(name, None))));
    }
    for name in &gone {
        cmds.push(NfCmd::Delete(NfListObject::Chain(chain_obj(name, None))));
    }
    // 6. Sets to remove.
    for (name, s) in &old.sets {
        match new.sets.get(name) {
            Some(n) if n.kind == s.kind => {}
            _ => cmds.push(NfCmd::Delete(set_obj(name, s.kind))),
        }
    }
    let verdict_maps = new
        .sets
        .iter()
        .chain(&old.sets)
        .filter(|(_, s)| s.kind == SetKind::MarkVerdicts)
        .map(|(n, _)| n.clone())
        .collect();
    Transaction::from_cmds(cmds, &verdict_maps)
}

fn flush_set(name: &str, kind: SetKind) -> FlushObject<'static> {
    match set_obj(name, kind) {
        NfListObject::Map(m) => FlushObject::Map(m),
        NfListObject::Set(s) => FlushObject::Set(s),
        _ => unreachable!("set_obj makes sets and maps"),
    }
}

/// Map elements are keyed: an address that moves to another identity, or an identity
/// whose signature chain changes, must be deleted (old value) before being added (new
/// value). Those deletes go out right away; the rest is returned.
fn split_map_updates(
    kind: SetKind,
    add: BTreeSet<Elem>,
    del: BTreeSet<Elem>,
    cmds: &mut Vec<NfCmd<'static>>,
    name: &str,
) -> (BTreeSet<Elem>, BTreeSet<Elem>) {
    if !kind.is_map() {
        return (add, del);
    }
    let key = |e: &Elem| match e {
        Elem::AddrMark(a, _) => format!("{a}"),
        Elem::MarkGoto(m, _) => format!("{m}"),
        other => format!("{other:?}"),
    };
    let added_keys: BTreeSet<String> = add.iter().map(key).collect();
    let (now, later): (BTreeSet<Elem>, BTreeSet<Elem>) =
        del.into_iter().partition(|e| added_keys.contains(&key(e)));
    if !now.is_empty() {
        cmds.push(NfCmd::Delete(elements(name, &now)));
    }
    (add, later)
}

/// Delete the whole table (`agent --uninstall`, tests).
pub fn delete_table() -> Transaction {
    Transaction::from_cmds(
        vec![NfCmd::Delete(NfListObject::Table(table()))],
        &BTreeSet::new(),
    )
}

/// When `old` and `new` differ only in elements of non-interval sets and maps (the usual
/// result of a workload change), those changes as netlink element operations: deletes
/// first (a map key whose value changes is deleted, then added), then adds. None when
/// anything else differs (a set or chain added, removed or rewritten, a CIDR changed):
/// that needs [`diff`] and nft.
pub fn element_ops(old: &Ruleset, new: &Ruleset) -> Option<Vec<crate::netlink::ElemOp>> {
    use crate::netlink::{ElemOp, supported};
    if !old.exists || old.sets.len() != new.sets.len() || old.chains.len() != new.chains.len() {
        return None;
    }
    for (name, c) in &new.chains {
        let o = old.chains.get(name)?;
        if o.hash.is_none() || o.hash != c.hash || o.hook != c.hook {
            return None;
        }
    }
    let (mut deletes, mut adds) = (Vec::new(), Vec::new());
    for (name, s) in &new.sets {
        let o = old.sets.get(name)?;
        let (Some(have), Some(want)) = (&o.elems, &s.elems) else {
            return None;
        };
        if o.kind != s.kind {
            return None;
        }
        if have == want || crate::names::is_dns_set(name) {
            continue;
        }
        if !supported(s.kind) {
            return None;
        }
        let op = |add: bool, elem: &Elem| ElemOp {
            set: name.clone(),
            kind: s.kind,
            add,
            elem: elem.clone(),
        };
        deletes.extend(have.difference(want).map(|e| op(false, e)));
        adds.extend(want.difference(have).map(|e| op(true, e)));
    }
    deletes.extend(adds);
    Some(deletes)
}
