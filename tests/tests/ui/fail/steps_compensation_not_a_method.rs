pub struct Bank;
pub struct Debit {
    pub amount: u64,
}

async fn refund(_bank: &Bank, _amount: u64, _debit: &Debit) -> Result<(), String> {
    Ok(())
}

#[sagaflow::steps]
impl Bank {
    #[step(compensate = refund)]
    async fn debit(&self, amount: u64) -> Result<Debit, String> {
        Ok(Debit { amount })
    }

    async fn credit(&self, _amount: u64) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
