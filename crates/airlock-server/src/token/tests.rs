//! Token store unit tests.

use super::*;

#[test]
fn short_durations_drop_zero_units() {
    assert_eq!(short_duration(36000), "10h");
    assert_eq!(short_duration(7198), "1h59m58s");
    assert_eq!(short_duration(300), "5m");
    assert_eq!(short_duration(86399), "23h59m59s");
}

#[test]
fn display_names() {
    assert_eq!(
        display_name(Some("fixture-app"), "token"),
        "token-fixture-app"
    );
    assert_eq!(display_name(None, "token"), "token");
    assert_eq!(display_name(Some("a b/c"), "token"), "token-a-b-c");
}
