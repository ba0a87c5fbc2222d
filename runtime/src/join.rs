//! `sagaflow::join!`: the path a `#[saga]` body names for concurrent steps.

/// Runs 2 to 12 steps concurrently in a `#[saga]` body.
///
/// ```
/// # use sagaflow::{saga, step};
/// # pub struct Airline; pub struct Hotels; pub struct Trip;
/// #[step(compensate = cancel_flight)]
/// async fn book_flight(airline: &Airline, trip: &Trip) -> Result<u64, String> { Ok(100) }
/// async fn cancel_flight(airline: &Airline, trip: &Trip, price: &u64) -> Result<(), String> { Ok(()) }
///
/// #[step(compensate = cancel_hotel)]
/// async fn book_hotel(hotels: &Hotels, trip: &Trip) -> Result<u64, String> { Ok(80) }
/// async fn cancel_hotel(hotels: &Hotels, trip: &Trip, price: &u64) -> Result<(), String> { Ok(()) }
///
/// #[saga]
/// async fn book_trip(airline: &Airline, hotels: &Hotels, trip: Trip) -> Result<u64, String> {
///     let (flight, hotel) = sagaflow::join!(book_flight(airline, &trip), book_hotel(hotels, &trip))?;
///     let total: u64 = flight + hotel;
///     Ok(total)
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # assert_eq!(book_trip(&Airline, &Hotels, Trip).await.unwrap(), 180);
/// # }
/// ```
///
/// The members are step calls written without `.await` or `?`; the `?` goes
/// after the group, and the pattern has one name per member (`_` for an output
/// that is not read). They are polled together on the saga's own task, nothing
/// is spawned, and each is a step as any other: its own retries, timeout,
/// hooks, span and report row. A member may not read another member's output.
///
/// When a member fails for good, no sibling is cancelled mid-attempt: an
/// attempt in flight runs to its end, but no new retry starts. Then the saga
/// undoes the group's members that succeeded, concurrently, and the steps
/// before the group in reverse order. [`SagaError::failed_step`](crate::SagaError::failed_step)
/// names the member that failed first, and
/// [`SagaError::failed_steps`](crate::SagaError::failed_steps) every one.
///
/// A group may not hold the pivot. Before the pivot its members are
/// compensatable or read-only; after it, all retriable. In a durable saga,
/// the intents of all members are committed at once before any runs, each
/// outcome on its own as it comes, and recovery runs again only the members
/// that had started without an outcome.
///
/// Outside a `#[saga]` body it does not compile: the saga macro reads it.
#[macro_export]
macro_rules! join {
    ($($members:tt)*) => {
        ::core::compile_error!(
            "`sagaflow::join!` works only in a `#[saga]` body, as `let (a, b) = sagaflow::join!(step_a(..), step_b(..))?;`: the saga macro turns it into steps that run at once"
        )
    };
}
