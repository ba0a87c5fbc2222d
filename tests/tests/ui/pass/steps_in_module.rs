//! Steps declared in other modules, called by path and imported with `use`.

mod travel {
    pub mod steps {
        use sagaflow::step;

        pub struct Booking(pub u32);

        #[step(compensate = cancel)]
        pub async fn book(seat: u32) -> Result<Booking, String> {
            Ok(Booking(seat))
        }

        pub async fn cancel(_seat: u32, _booking: &Booking) -> Result<(), String> {
            Ok(())
        }

        #[step(pivot)]
        pub async fn pay(booking: &Booking) -> Result<u64, String> {
            Ok(u64::from(booking.0) * 10)
        }
    }

    pub mod mail {
        use sagaflow::step;

        // The compensation of a step in another module, by path.
        #[step(compensate = super::steps::cancel)]
        pub async fn hold(seat: u32) -> Result<super::steps::Booking, String> {
            Ok(super::steps::Booking(seat))
        }

        #[step(retriable)]
        pub async fn notify(amount: u64) -> Result<(), String> {
            let _ = amount;
            Ok(())
        }
    }
}

use sagaflow::saga;
use travel::mail::notify;
use travel::steps;

#[saga]
async fn trip(seat: u32) -> Result<u64, String> {
    let _held = travel::mail::hold(seat + 1).await?;
    let booking = steps::book(seat).await?;
    let paid = steps::pay(&booking).await?;
    notify(paid).await?;
    Ok(paid)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(trip(4)).unwrap(), 40);
}
