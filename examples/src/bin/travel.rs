//! Books two trips with the `travel` saga and tells what happens: one that
//! goes through (after the mail server is busy once), and one whose hotel has
//! no rooms, so the flight is cancelled and the customer refunded.
//!
//! Run it with `cargo run -p sagaflow-examples --bin travel`.

use sagaflow::Runner;
use sagaflow_examples::travel::{
    Airline, Bank, BookTripSaga, Hotels, Mailer, Narrator, Trip, euros, format_euros,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("The saga, as declared:\n{}\n", BookTripSaga::graph());

    let bank = Bank::new()
        .with_account("ada", euros(2_000))
        .with_account("alan", euros(1_500));
    let airline = Airline::new();
    let hotels = Hotels::new().with_no_rooms_in("Venice");
    let mailer = Mailer::busy_for(1);
    let runner = Runner::new().with_hooks(Narrator::new());

    println!(
        "== Trip 1: Ada, 3 nights in Lisbon for {} ==",
        format_euros(euros(900))
    );
    let trip = Trip::new("ada", "ada@example.com", "Lisbon", 3, euros(900));
    let (result, report) = runner
        .run_reported(BookTripSaga::new(&bank, &airline, &hotels, &mailer, trip))
        .await;
    match result {
        Ok(itinerary) => println!("\nBooked: {itinerary}"),
        Err(err) => println!("\nNot booked: {err}"),
    }
    println!("\nRun report:\n{report}");
    println!(
        "Afterwards: Ada has {} left; {} flight(s) and {} hotel room(s) booked; {} e-mail(s) sent.\n",
        format_euros(bank.balance("ada").unwrap_or_default()),
        airline.booked().len(),
        hotels.booked().len(),
        mailer.sent().len(),
    );

    println!(
        "== Trip 2: Alan, 2 nights in Venice for {} (no rooms there) ==",
        format_euros(euros(700))
    );
    let trip = Trip::new("alan", "alan@example.com", "Venice", 2, euros(700));
    let (result, report) = runner
        .run_reported(BookTripSaga::new(&bank, &airline, &hotels, &mailer, trip))
        .await;
    match result {
        Ok(itinerary) => println!("\nBooked: {itinerary}"),
        Err(err) => {
            println!("\nNot booked: {err}");
            println!("Failed step: `{}`", err.failed_step());
            println!("Undone, in this order: {:?}", err.undone());
        }
    }
    println!("\nRun report:\n{report}");
    let cancelled: Vec<_> = airline
        .cancelled()
        .into_iter()
        .map(|b| b.reference)
        .collect();
    let booked: Vec<_> = airline.booked().into_iter().map(|b| b.reference).collect();
    println!(
        "Afterwards: Alan has {} (he started with {}); flights cancelled: {:?}; flights still booked: {:?}.",
        format_euros(bank.balance("alan").unwrap_or_default()),
        format_euros(euros(1_500)),
        cancelled,
        booked,
    );
}
