pub trait Payments {
    fn charge(&self, cents: u64) -> u64;
}

// Steps declared on a trait object.
#[sagaflow::steps]
impl dyn Payments {
    #[step(read_only)]
    async fn quote(&self, cents: u64) -> Result<u64, String> {
        Ok(self.charge(cents))
    }
}

fn main() {}
