use sagaflow::saga;

pub struct Bank;
pub struct Debit {
    pub amount: u64,
}

#[sagaflow::steps]
impl Bank {
    #[step(read_only)]
    async fn balance(&self) -> Result<u64, String> {
        Ok(0)
    }
}

// `bank` is an owned input here, not a resource.
#[saga]
async fn audit(bank: Bank) -> Result<u64, String> {
    let balance = bank.balance().await?;
    Ok(balance)
}

fn main() {}
