// The saga of the guide's first page, verbatim (a test checks it), included into
// the doctests of later pages that need `book_trip` and `BookTripSaga`. Not a
// module of the crate: `include!`d after `use sagaflow::{saga, step};` and the
// travel services (`travel.rs`).

#[step(compensate = refund_customer)]
async fn debit_customer(bank: &Bank, trip: &Trip) -> Result<Payment, TripError> {
    bank.debit(&trip.customer, trip.price).await
}

// A compensation takes its step's parameters, then a reference to its output.
async fn refund_customer(bank: &Bank, trip: &Trip, payment: &Payment) -> Result<(), TripError> {
    bank.refund(payment).await
}

#[step(compensate = cancel_flight, retry = 2, timeout = "2s")]
async fn book_flight(airline: &Airline, trip: &Trip) -> Result<FlightBooking, TripError> {
    airline.book(&trip.customer, &trip.city).await
}

async fn cancel_flight(airline: &Airline, trip: &Trip, flight: &FlightBooking) -> Result<(), TripError> {
    airline.cancel(flight).await
}

#[step(pivot)] // the point of no return: once the hotel is booked, the trip is on
async fn book_hotel(hotels: &Hotels, trip: &Trip, flight: &FlightBooking) -> Result<HotelBooking, TripError> {
    hotels.book(&trip.city, trip.nights, flight).await
}

#[step(retriable)] // after the pivot: retried until it succeeds, never undone
async fn email_itinerary(mailer: &Mailer, trip: &Trip, hotel: &HotelBooking) -> Result<(), TripError> {
    mailer.send(&trip.email, hotel).await
}

#[saga]
async fn book_trip(bank: &Bank, airline: &Airline, hotels: &Hotels, mailer: &Mailer, trip: Trip)
    -> Result<Itinerary, TripError>
{
    let payment = debit_customer(bank, &trip).await?;
    let flight = book_flight(airline, &trip).await?;
    let hotel = book_hotel(hotels, &trip, &flight).await?;
    email_itinerary(mailer, &trip, &hotel).await?;
    Ok(Itinerary { payment, flight, hotel })
}
