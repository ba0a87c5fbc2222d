// `sagaflow::send!` outside a `#[saga]` body.
fn main() {
    sagaflow::send!("audit", &1);
}
