// `sagaflow::inline!` outside a `#[saga]` body.
fn main() {
    let _ = sagaflow::inline!(log_it, read_only, async { Ok::<(), String>(()) });
}
