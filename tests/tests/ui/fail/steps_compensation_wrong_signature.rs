pub struct Bank;
pub struct Debit {
    pub amount: u64,
}

#[sagaflow::steps]
impl Bank {
    #[step(compensate = Self::refund)]
    async fn debit(&self, amount: u64) -> Result<Debit, String> {
        Ok(Debit { amount })
    }

    async fn refund(&self, _debit: &Debit) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
