//! Properties of the selector language: printing then parsing gives back the same tree,
//! evaluation agrees between the two forms, and no input makes the parser panic.

use std::collections::BTreeSet;

use bulkhead_model::Labels;
use bulkhead_model::selector::{Selector, parse};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("app".to_string()),
        Just("in".to_string()),
        Just("has".to_string()),
        Just("k8s.io/name".to_string()),
        "[a-z][a-z0-9_.-]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    // Anything, including quotes, backslashes, unicode and whitespace.
    prop_oneof![Just(String::new()), "\\PC{0,6}", "[\"'\\\\ \\t\\n]{1,3}"]
}

fn values() -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::btree_set(value(), 1..4)
}

fn leaf() -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::All),
        (key(), value()).prop_map(|(k, v)| Selector::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::Ne(k, v)),
        (key(), values()).prop_map(|(k, v)| Selector::In(k, v)),
        (key(), values()).prop_map(|(k, v)| Selector::NotIn(k, v)),
        key().prop_map(Selector::Has),
        (key(), value()).prop_map(|(k, v)| Selector::StartsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::EndsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::Contains(k, v)),
    ]
}

/// Selectors in the normal form the constructors produce (flat And/Or, no `all()`
/// operands), which is the form printing must preserve.
fn selector() -> impl Strategy<Value = Selector> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Selector::not),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Selector::and),
            prop::collection::vec(inner, 2..4).prop_map(Selector::or),
        ]
    })
}

fn labels() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(key(), value(), 0..4).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn print_then_parse_is_identity(s in selector()) {
        let text = s.to_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(&back, &s, "printed as {:?}", text);
    }

    #[test]
    fn printed_form_means_the_same(s in selector(), l in labels()) {
        let back = parse(&s.to_string()).unwrap();
        prop_assert_eq!(back.matches(&l), s.matches(&l));
    }

    #[test]
    fn parser_never_panics(text in "\\PC{0,64}") {
        if let Err(e) = parse(&text) {
            prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e} for {text:?}");
        }
    }

    #[test]
    fn parser_never_panics_on_near_valid_input(s in selector(), cut in 0usize..200, junk in "[()!&|{}=,\"' a-z]{0,4}") {
        let text = s.to_string();
        let chars: Vec<char> = text.chars().collect();
        let at = cut.min(chars.len());
        let mutated: String = chars[..at].iter().collect::<String>() + &junk + &chars[at..].iter().collect::<String>();
        let _ = parse(&mutated);
    }
}
