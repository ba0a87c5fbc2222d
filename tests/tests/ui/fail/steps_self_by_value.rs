pub struct Bank;
pub struct Debit {
    pub amount: u64,
}

#[sagaflow::steps]
impl Bank {
    #[step(read_only)]
    async fn balance(self) -> Result<u64, String> {
        Ok(0)
    }
}

fn main() {}
