//! `kind: PolicyTest` (`bulkhead.io/v1`, strict): assertions that `bulkhead test` checks
//! against the policy, e.g. "web may open TCP/8080 on api; nothing else may".

use bulkhead_model::L4;
use bulkhead_policy::l7::parse_request;
use bulkhead_policy::spec::{Expect, PolicyTest, TestCase, TestEndpoint};

use crate::bulkhead::{meta_rule, spec, workloads};
use crate::decode::{Cx, Fields, Obj, P};
use crate::k8s::{self, Scope};
use crate::yaml::{Node, Resolved, Value};

const EXPECT: &[(&str, Expect)] = &[("allow", Expect::Allow), ("deny", Expect::Deny)];

pub fn policy_test(cx: &mut Cx, doc: &Obj, root: P) -> Option<PolicyTest> {
    let m = k8s::meta(cx, doc, root, meta_rule("PolicyTest", Scope::ClusterStrict));
    let at = root.f("spec");
    let s = spec(cx, doc, root, &["cases"])?;
    let cases = match s.as_ref().and_then(|s| s.get("cases")) {
        Some(n) => cx.seq_of(n, at.f("cases"), case),
        None => {
            let pos = s.map_or(doc.pos(), |s| s.pos());
            cx.err(pos, at.f("cases"), "missing required field \"cases\"");
            None
        }
    };
    Some(PolicyTest {
        name: m?.name,
        cases: cases?,
        origin: cx.origin(doc.pos()),
    })
}

fn case(cx: &mut Cx, n: &Node, at: P) -> Option<TestCase> {
    let fields = ["name", "from", "to", "port", "request", "expect"];
    let o = cx.obj(n, at, Fields::Strict(&fields))?;
    let name = match o.get("name") {
        Some(v) => cx.nonempty_str(v, at.f("name")).map(Some),
        None => Some(None),
    };
    let end = |cx: &mut Cx, key: &str| {
        let v = cx.required(
            &o,
            key,
            at,
            " (NAMESPACE/NAME, NAME, an address, a DNS name or {selector: ...})",
        )?;
        endpoint(cx, v, at.f(key))
    };
    let from = end(cx, "from");
    let to = end(cx, "to");
    let service = cx
        .required(&o, "port", at, " (such as TCP/8080)")
        .and_then(|v| service(cx, v, at.f("port")));
    let request = match o.get("request") {
        None => Some(None),
        Some(v) => {
            let at_r = at.f("request");
            let text = cx.str(v, at_r)?;
            match parse_request(&text) {
                Ok(_) => Some(Some(text)),
                Err(e) => {
                    cx.err(v.pos, at_r, format!("invalid request {text:?}: {e}"));
                    None
                }
            }
        }
    };
    let expect = cx
        .required(&o, "expect", at, " (allow or deny)")
        .and_then(|v| cx.one_of(v, at.f("expect"), "expectation", EXPECT, false));
    Some(TestCase {
        name: name?,
        from: from?,
        to: to?,
        service: service?,
        expect: expect?,
        request: request?,
        origin: cx.origin(n.pos),
    })
}

/// A named endpoint (a string) or the workloads a selector selects (a mapping).
fn endpoint(cx: &mut Cx, n: &Node, at: P) -> Option<TestEndpoint> {
    if let Value::Map(_) = n.value {
        let o = cx.obj(
            n,
            at,
            Fields::Strict(&["selector", "namespaceSelector", "namespaces"]),
        )?;
        return workloads(cx, &o, at).map(TestEndpoint::Workloads);
    }
    cx.nonempty_str(n, at).map(TestEndpoint::Named)
}

/// `TCP/8080`, `UDP/53`, `ICMP/8/0` (the probe notation); a bare number is a TCP port.
fn service(cx: &mut Cx, n: &Node, at: P) -> Option<L4> {
    if let Value::Scalar(s) = &n.value
        && let Resolved::Int(p) = s.resolve()
    {
        return match u16::try_from(p) {
            Ok(p) if p > 0 => Some(L4::tcp(p)),
            _ => {
                cx.err(n.pos, at, format!("must be from 1 to 65535, got {p}"));
                None
            }
        };
    }
    let text = cx.str(n, at)?;
    match text.parse::<L4>() {
        Ok(l4) => Some(l4),
        Err(e) => {
            cx.err(n.pos, at, e);
            None
        }
    }
}
