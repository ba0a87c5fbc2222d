//! The travel saga against its fake services: what it leaves behind when it
//! commits, and what it undoes, in which order, when it does not.

use sagaflow::{Outcome, Phase, RunOutcome, Runner, SagaError, StepFailure};
use sagaflow_examples::travel::{
    Airline, Bank, BookTripSaga, Hotels, Itinerary, Mailer, Narrator, Trip, TripError, book_trip,
    euros,
};

/// The services of one test, with two customers who can pay.
struct World {
    bank: Bank,
    airline: Airline,
    hotels: Hotels,
    mailer: Mailer,
}

impl World {
    fn new() -> Self {
        World {
            bank: Bank::new()
                .with_account("ada", euros(2_000))
                .with_account("bob", euros(100)),
            airline: Airline::new().with_no_seats_to("Reykjavik"),
            hotels: Hotels::new().with_no_rooms_in("Venice"),
            mailer: Mailer::new(),
        }
    }

    fn saga(&self, trip: Trip) -> BookTripSaga<'_> {
        BookTripSaga::new(&self.bank, &self.airline, &self.hotels, &self.mailer, trip)
    }

    async fn book(&self, trip: Trip) -> Result<Itinerary, SagaError<TripError>> {
        book_trip(&self.bank, &self.airline, &self.hotels, &self.mailer, trip).await
    }
}

fn ada_to(city: &str) -> Trip {
    Trip::new("ada", "ada@example.com", city, 3, euros(900))
}

#[tokio::test]
async fn a_booked_trip_leaves_a_payment_a_flight_a_hotel_and_an_email() {
    let world = World::new();
    let itinerary = world.book(ada_to("Lisbon")).await.unwrap();

    assert_eq!(world.bank.balance("ada"), Some(euros(1_100)));
    assert_eq!(
        world.bank.debits(),
        std::slice::from_ref(&itinerary.payment)
    );
    assert!(world.bank.refunds().is_empty());
    assert_eq!(itinerary.payment.amount, euros(900));

    assert_eq!(
        world.airline.booked(),
        std::slice::from_ref(&itinerary.flight)
    );
    assert_eq!(itinerary.flight.city, "Lisbon");
    assert_eq!(
        world.hotels.booked(),
        std::slice::from_ref(&itinerary.hotel)
    );
    assert_eq!(itinerary.hotel.nights, 3);
    assert_eq!(itinerary.hotel.customer, itinerary.flight.customer);

    let sent = world.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "ada@example.com");
    assert_eq!(sent[0].subject, "Your trip to Lisbon");
    assert!(
        sent[0].body.contains(&itinerary.flight.reference),
        "{}",
        sent[0].body
    );
    assert!(
        sent[0].body.contains(&itinerary.hotel.reference),
        "{}",
        sent[0].body
    );
}

#[tokio::test]
async fn a_hotel_without_rooms_cancels_the_flight_booked_meanwhile_then_refunds_the_customer() {
    let world = World::new();
    let err = world.book(ada_to("Venice")).await.unwrap_err();

    assert_eq!(err.failed_step(), "Hotels::book_hotel");
    assert_eq!(
        err.cause(),
        Some(&TripError::NoRooms {
            city: "Venice".into()
        })
    );
    assert!(err.is_compensated());
    assert_eq!(
        err.undone(),
        ["Airline::book_flight", "Bank::debit_customer"]
    );
    assert!(err.failed_compensations().is_empty());

    // No flight stands: the one booked was cancelled.
    assert!(world.airline.booked().is_empty());
    let cancelled = world.airline.cancelled();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].city, "Venice");
    // The customer got the money back, once.
    assert_eq!(world.bank.balance("ada"), Some(euros(2_000)));
    assert_eq!(world.bank.refunds(), world.bank.debits());
    assert_eq!(world.bank.refunds().len(), 1);
    // Nothing else happened.
    assert!(world.hotels.booked().is_empty());
    assert_eq!(world.mailer.attempts(), 0);

    assert_eq!(
        err.to_string(),
        "saga step `Hotels::book_hotel` failed (no hotel rooms left in Venice); \
         undone: `Airline::book_flight`, `Bank::debit_customer`"
    );
}

#[tokio::test]
async fn the_report_and_the_hooks_show_the_compensations_in_reverse_order() {
    let world = World::new();
    let narrator = Narrator::quiet();
    let (result, report) = Runner::new()
        .with_hooks(&narrator)
        .run_reported(world.saga(ada_to("Venice")))
        .await;
    assert!(result.is_err());

    assert_eq!(report.outcome(), RunOutcome::Compensated);
    let forward: Vec<_> = report.steps().map(|r| (r.step(), r.outcome())).collect();
    assert_eq!(
        forward,
        [
            ("Bank::debit_customer", Outcome::Succeeded),
            ("Airline::book_flight", Outcome::Succeeded),
            ("Hotels::book_hotel", Outcome::Failed),
        ]
    );
    // The flight and the hotel were booked as one group.
    let groups: Vec<_> = report.steps().map(|r| r.group()).collect();
    assert_eq!(groups, [None, Some(0), Some(0)]);
    let undo: Vec<_> = report.compensations().map(|r| r.function()).collect();
    assert_eq!(undo, ["cancel_flight", "refund_customer"]);
    assert_eq!(
        report
            .find("Hotels::book_hotel", Phase::Forward)
            .unwrap()
            .error(),
        Some("no hotel rooms left in Venice")
    );

    let lines = narrator.lines();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line says {needle:?} in {lines:#?}"))
    };
    assert!(
        position("`Hotels::book_hotel` failed for good")
            < position("undoing `Airline::book_flight`")
    );
    assert!(position("`Airline::book_flight` undone") < position("undoing `Bank::debit_customer`"));
    assert!(
        lines
            .last()
            .unwrap()
            .contains("everything that was done was undone"),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn when_the_first_step_fails_the_hooks_say_nothing_needed_undoing() {
    let world = World::new();
    let narrator = Narrator::quiet();
    let trip = Trip::new("bob", "bob@example.com", "Lisbon", 1, euros(300));
    // `run`, not `run_reported`: the hooks get the same report either way.
    let err = Runner::new()
        .with_hooks(&narrator)
        .run(world.saga(trip))
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), "Bank::debit_customer");

    let lines = narrator.lines();
    assert_eq!(
        lines[2..],
        [
            "  `Bank::debit_customer` failed for good: bob has €100.00 but the trip costs €300.00; \
             nothing was done before it, so nothing needs undoing",
            "saga `book_trip` gave up; nothing had been done, so nothing needed undoing",
        ],
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("undoing `")), "{lines:#?}");
}

#[tokio::test]
async fn a_full_flight_cancels_the_hotel_booked_meanwhile_then_refunds_the_customer() {
    let world = World::new();
    let err = world.book(ada_to("Reykjavik")).await.unwrap_err();

    assert_eq!(err.failed_step(), "Airline::book_flight");
    // The hotel, booked at the same time, is cancelled, then the payment refunded.
    assert_eq!(err.undone(), ["Hotels::book_hotel", "Bank::debit_customer"]);
    assert_eq!(world.bank.balance("ada"), Some(euros(2_000)));
    assert!(world.airline.booked().is_empty());
    assert!(world.airline.cancelled().is_empty());
    assert!(world.hotels.booked().is_empty());
    let cancelled = world.hotels.cancelled();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].city, "Reykjavik");
    assert_eq!(
        err.to_string(),
        "saga step `Airline::book_flight` failed (no seats left on flights to Reykjavik); \
         undone: `Hotels::book_hotel`, `Bank::debit_customer`"
    );
}

#[tokio::test]
async fn a_full_flight_and_a_full_hotel_are_both_reported() {
    let world = World {
        hotels: Hotels::new().with_no_rooms_in("Reykjavik"),
        ..World::new()
    };
    let err = world.book(ada_to("Reykjavik")).await.unwrap_err();

    // Neither member waits for the other; both failures are in the error.
    assert_eq!(err.failed_step(), "Airline::book_flight");
    let failed: Vec<_> = err.failed_steps().iter().map(|r| r.step()).collect();
    assert_eq!(failed, ["Airline::book_flight", "Hotels::book_hotel"]);
    assert_eq!(err.undone(), ["Bank::debit_customer"]);
    assert_eq!(world.bank.balance("ada"), Some(euros(2_000)));
}

#[tokio::test]
async fn a_customer_who_cannot_pay_gets_nothing_and_nothing_is_undone() {
    let world = World::new();
    let trip = Trip::new("bob", "bob@example.com", "Lisbon", 1, euros(300));
    let err = world.book(trip).await.unwrap_err();

    assert_eq!(err.failed_step(), "Bank::debit_customer");
    assert!(err.undone().is_empty());
    assert_eq!(
        err.cause(),
        Some(&TripError::InsufficientFunds {
            customer: "bob".into(),
            balance: euros(100),
            needed: euros(300),
        })
    );
    assert_eq!(world.bank.balance("bob"), Some(euros(100)));
    assert!(world.airline.booked().is_empty());
    assert!(
        err.to_string().ends_with("nothing had to be undone"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn once_booked_a_busy_mail_server_only_delays_the_itinerary() {
    let world = World {
        mailer: Mailer::busy_for(4),
        ..World::new()
    };
    let (result, report) = Runner::new()
        .run_reported(world.saga(ada_to("Lisbon")))
        .await;

    result.unwrap();
    assert_eq!(report.outcome(), RunOutcome::Committed);
    let email = report.find("email_itinerary", Phase::Forward).unwrap();
    assert_eq!(email.attempts(), 5);
    assert_eq!(email.outcome(), Outcome::Succeeded);
    assert_eq!(world.mailer.attempts(), 5);
    assert_eq!(world.mailer.sent().len(), 1);
    assert_eq!(report.compensations().count(), 0);
    assert_eq!(world.airline.booked().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refund_that_keeps_failing_is_reported_for_manual_repair() {
    let world = World {
        bank: Bank::new()
            .with_account("ada", euros(2_000))
            .refusing_refunds(),
        ..World::new()
    };
    let err = world.book(ada_to("Venice")).await.unwrap_err();

    assert!(matches!(err, SagaError::CompensationFailed { .. }));
    assert!(!err.is_compensated());
    assert_eq!(err.failed_step(), "Hotels::book_hotel");
    // The flight is cancelled first; then the refund fails for good, and is
    // reported rather than dropped.
    assert_eq!(err.undone(), ["Airline::book_flight"]);
    assert!(world.airline.booked().is_empty());

    let failed = err.failed_compensations();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].step(), "Bank::debit_customer");
    assert_eq!(failed[0].compensation(), "refund_customer");
    assert_eq!(failed[0].error(), "the bank's refund service is down");
    assert_eq!(
        failed[0].attempts(),
        6,
        "the default policy retries 5 times"
    );
    assert_eq!(world.bank.balance("ada"), Some(euros(1_100)));
    assert_eq!(err.report().outcome(), RunOutcome::CompensationFailed);
    assert!(
        err.to_string().contains("which needs manual repair"),
        "{err}"
    );
    assert!(matches!(
        err.failure(),
        StepFailure::Error(TripError::NoRooms { .. })
    ));
}

#[test]
fn the_graph_books_the_flight_and_the_hotel_at_once() {
    let graph = BookTripSaga::graph().to_string();
    assert_eq!(
        graph.lines().collect::<Vec<_>>(),
        [
            "saga book_trip",
            "1. Bank::debit_customer (compensate: refund_customer)",
            "2. Airline::book_flight (compensate: cancel_flight, at once in group 1)",
            "3. Hotels::book_hotel (compensate: cancel_hotel, at once in group 1)",
            "4. email_itinerary (retriable, backoff 10ms..100ms)",
        ]
    );
}
