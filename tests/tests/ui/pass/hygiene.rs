//! Generated code compiles under strict lints and next to user types that
//! shadow the prelude's names.
#![deny(
    warnings,
    missing_docs,
    unused_qualifications,
    unused_results,
    unreachable_pub
)]
#![deny(clippy::all, rust_2018_idioms, unused_lifetimes, single_use_lifetimes)]
#![forbid(unsafe_code)]

/// A saga module whose names shadow the prelude.
pub mod shadowing {
    #![allow(clippy::disallowed_names)]

    use ::sagaflow::{saga, step};

    /// Not `core::result::Result`.
    pub type Result<T, E = Error> = core::result::Result<T, E>;

    /// Not `core::option::Option`.
    #[derive(Debug)]
    pub struct Option;

    /// Not `alloc::boxed::Box`.
    #[derive(Debug)]
    pub struct Box;

    /// Not `alloc::vec::Vec`.
    #[derive(Debug)]
    pub struct Vec;

    /// Not `core::marker::Send`.
    pub trait Send {}

    /// Not `core::marker::Sized`.
    pub trait Sized {}

    /// Not `core::clone::Clone`.
    pub trait Clone {}

    /// Not `core::convert::From`.
    pub trait From {}

    /// Not `core::future::Future`.
    pub trait Future {}

    /// Not `core::ops::FnMut`.
    pub trait FnMut {}

    /// Not `core::fmt::Display`.
    pub trait Display {}

    /// Not `String`.
    #[derive(Debug)]
    pub struct String;

    /// Not `core::result::Result::Ok`, but a function (values namespace).
    #[allow(non_snake_case)]
    pub fn Err() {}

    /// Not `core::option::Option::Some`.
    #[allow(non_snake_case)]
    pub fn Some() {}

    /// Not `core::option::Option::None`.
    #[allow(non_upper_case_globals)]
    pub const None: u8 = 0;

    /// Not `core::default::Default`.
    pub trait Default {}

    /// Not `core::iter::Iterator`.
    pub trait Iterator {}

    /// A module named like the crates the generated code uses.
    pub mod core {
        pub use ::core::*;
    }

    /// Another module named like a crate the generated code uses.
    pub mod sagaflow {}

    /// The error of this module.
    #[derive(Debug)]
    pub struct Error;

    impl ::core::fmt::Display for Error {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            f.write_str("error")
        }
    }

    /// A booking.
    #[derive(Debug)]
    pub struct Booking {
        /// Its id.
        pub id: u32,
    }

    /// Books one seat.
    #[step(compensate = cancel, retry = 1, timeout = "1s")]
    pub async fn book(seat: &u32, _unused: Option) -> Result<Booking> {
        Ok(Booking { id: *seat })
    }

    /// Cancels a seat.
    pub async fn cancel(_seat: &u32, _unused: Option, _booking: &Booking) -> Result<()> {
        Ok(())
    }

    /// Looks at the seat.
    #[step(read_only)]
    pub async fn look(booking: &Booking) -> Result<Vec> {
        let _ = booking;
        Ok(Vec)
    }

    /// The point of no return.
    #[step(pivot)]
    pub async fn commit<'a>(booking: &'a Booking, _b: &'a Box) -> Result<&'static str> {
        let _ = booking;
        Ok("committed")
    }

    /// Retried until it works.
    #[step(retriable, retry(backoff = "1ms"))]
    pub async fn tell(id: u32) -> Result<String> {
        let _ = id;
        Ok(String)
    }

    /// The saga under test.
    #[saga]
    pub async fn reserve(seat: u32, bx: &Box) -> Result<(u32, Vec, String), Error> {
        let booking = book(&seat, Option).await?;
        let seen = look(&booking).await?;
        let id: u32 = booking.id + 1;
        let _ = commit(&booking, bx).await?;
        let told = tell(id).await?;
        Ok((booking.id, seen, told))
    }

    /// A saga with branches, under the same lints.
    #[saga]
    pub async fn choose(seat: u32, bx: &Box) -> Result<u32, Error> {
        let booking = book(&seat, Option).await?;
        let told = if seat > 1 {
            let seen = look(&booking).await?;
            let n: u32 = seat + 1;
            tell(n).await?
        } else {
            tell(seat).await?
        };
        match seat {
            0 => {
                let _ = look(&booking).await?;
            }
            _ => {}
        }
        let _ = commit(&booking, bx).await?;
        Ok(booking.id)
    }
}

/// Runs the saga.
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (id, _, _) = rt.block_on(shadowing::reserve(3, &shadowing::Box)).unwrap();
    assert_eq!(id, 3);
    let _graph = shadowing::ReserveSaga::graph();
    assert_eq!(rt.block_on(shadowing::choose(2, &shadowing::Box)).unwrap(), 2);
}
