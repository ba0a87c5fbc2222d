//! A travel booking saga with all four step kinds and every option, run to
//! success and to failure.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use sagaflow::{Runner, SagaError, StepContext, saga, step};

#[derive(Debug)]
pub struct TripError(String);

impl std::fmt::Display for TripError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug)]
pub struct Trip {
    pub from: String,
    pub to: String,
    pub nights: u32,
    pub card: String,
}

#[derive(Debug)]
pub struct FlightBooking {
    pub code: String,
    pub price: u64,
}

#[derive(Debug)]
pub struct HotelBooking {
    pub room: u32,
    pub price: u64,
}

#[derive(Debug)]
pub struct Itinerary {
    pub flight: FlightBooking,
    pub hotel: HotelBooking,
    pub total: u64,
}

#[derive(Default)]
pub struct Airline {
    pub cancelled: Mutex<Vec<String>>,
}

#[derive(Default)]
pub struct Hotels {
    pub full: bool,
    pub released: AtomicU32,
}

#[derive(Default)]
pub struct Bank {
    pub charges: Mutex<Vec<u64>>,
    pub flaky_mailer: AtomicU32,
}

#[step(read_only, timeout = "1s")]
async fn check_trip(trip: &Trip) -> Result<u32, TripError> {
    if trip.nights == 0 {
        return Err(TripError("a trip needs at least one night".into()));
    }
    Ok(trip.nights)
}

#[step(compensate = cancel_flight, retry = 2, timeout = "2s")]
async fn book_flight(airline: &Airline, trip: &Trip) -> Result<FlightBooking, TripError> {
    let _ = airline;
    Ok(FlightBooking {
        code: format!("{}-{}", trip.from, trip.to),
        price: 300,
    })
}

async fn cancel_flight(
    airline: &Airline,
    _trip: &Trip,
    booking: &FlightBooking,
) -> Result<(), TripError> {
    airline.cancelled.lock().unwrap().push(booking.code.clone());
    Ok(())
}

#[step(
    compensate = release_room,
    retry(max = 3, backoff = "1ms", max_backoff = "5ms"),
    compensate_retry(max = 2, backoff = "1ms")
)]
async fn book_hotel(
    hotels: &Hotels,
    nights: u32,
    flight: &FlightBooking,
) -> Result<HotelBooking, TripError> {
    let _ = flight;
    if hotels.full {
        return Err(TripError("no room".into()));
    }
    Ok(HotelBooking {
        room: 12,
        price: 80 * u64::from(nights),
    })
}

async fn release_room(
    hotels: &Hotels,
    _nights: u32,
    _flight: &FlightBooking,
    _room: &HotelBooking,
) -> Result<(), TripError> {
    hotels.released.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[step(pivot)]
async fn charge(bank: &Bank, card: &str, amount: u64) -> Result<u64, TripError> {
    let _ = card;
    bank.charges.lock().unwrap().push(amount);
    Ok(amount)
}

#[step(
    retriable,
    retry(backoff = "1ms", max_backoff = "2ms"),
    timeout = "500ms"
)]
async fn send_confirmation(bank: &Bank, trip: &Trip) -> Result<(), TripError> {
    let _ = trip;
    let attempt = StepContext::current().map(|cx| cx.attempt()).unwrap_or(1);
    if bank.flaky_mailer.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(TripError(format!("mailer down (attempt {attempt})")));
    }
    Ok(())
}

/// Books a flight and a hotel, charges the card, then confirms.
#[saga]
async fn book_trip(
    airline: &Airline,
    hotels: &Hotels,
    bank: &Bank,
    trip: Trip,
) -> Result<Itinerary, TripError> {
    let nights = check_trip(&trip).await?;
    let flight = book_flight(airline, &trip).await?;
    let hotel = book_hotel(hotels, nights, &flight).await?;
    let total: u64 = flight.price + hotel.price;
    let _ = charge(bank, &trip.card, total).await?;
    send_confirmation(bank, &trip).await?;
    Ok(Itinerary {
        flight,
        hotel,
        total,
    })
}

fn trip() -> Trip {
    Trip {
        from: "BER".into(),
        to: "LIS".into(),
        nights: 3,
        card: "4242".into(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (airline, hotels, bank) = (Airline::default(), Hotels::default(), Bank::default());
        let itinerary = book_trip(&airline, &hotels, &bank, trip()).await.unwrap();
        assert_eq!(itinerary.total, 300 + 240);
        assert_eq!(itinerary.flight.code, "BER-LIS");
        assert_eq!(itinerary.hotel.room, 12);
        assert_eq!(*bank.charges.lock().unwrap(), [540]);

        let full = Hotels {
            full: true,
            ..Hotels::default()
        };
        let err: SagaError<TripError> = Runner::new()
            .run(BookTripSaga::new(&airline, &full, &bank, trip()))
            .await
            .unwrap_err();
        assert_eq!(err.failed_step(), "book_hotel");
        assert_eq!(err.undone(), ["book_flight"]);
        assert!(err.is_compensated());
        assert_eq!(*airline.cancelled.lock().unwrap(), ["BER-LIS"]);
        assert_eq!(full.released.load(Ordering::SeqCst), 0);

        let graph = BookTripSaga::graph();
        assert!(graph.to_mermaid().contains("book_hotel"));
        assert!(graph.to_dot().contains("cancel_flight"));
    });
}
