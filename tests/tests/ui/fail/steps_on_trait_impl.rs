pub struct Bank;
pub struct Debit {
    pub amount: u64,
}

pub trait Payments {
    fn charge(&self, amount: u64) -> impl std::future::Future<Output = Result<u64, String>>;
}

#[sagaflow::steps]
impl Payments for Bank {
    #[step(read_only)]
    async fn charge(&self, amount: u64) -> Result<u64, String> {
        Ok(amount)
    }
}

fn main() {}
