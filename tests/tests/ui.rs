//! The compile-fail and compile-pass suite: every mistake a user can make in a
//! `#[step]` or `#[saga]` declaration, with the message they see checked in.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
