use sagaflow::saga;

pub trait Payments {
    fn charge(&self, cents: u64) -> impl std::future::Future<Output = Result<u32, String>>;
}

// A step method called on a resource whose type is the saga's type parameter.
#[saga]
async fn checkout<P: Payments>(payments: &P, cents: u64) -> Result<u32, String> {
    let receipt = payments.charge(cents).await?;
    Ok(receipt)
}

fn main() {}
