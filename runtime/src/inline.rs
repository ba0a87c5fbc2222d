//! `sagaflow::inline!`: a step written in place inside a `#[saga]` body.

/// A small step written in place, inside a `#[saga]` body, with an optional
/// compensation: for a log line or a small action between two service calls.
///
/// ```text
/// let _ = sagaflow::inline!(log_booking, read_only, async { audit.write(&trip).await })?;
/// let hold: Hold = sagaflow::inline!(
///     hold_seat,
///     compensate = async |hold| seats.release(hold).await,
///     async { seats.hold(&trip).await },
/// )?;
/// ```
///
/// - The first argument is the step's name, required: its identity in the
///   journal, the graph and the report, unique among the saga's inline steps.
/// - Then its kind and options, as in `#[step(..)]`: `read_only`, `pivot`,
///   `retriable` or `compensate = async |output| ..`, and `retry = N`,
///   `timeout = ".."`, and so on. A compensation is an async closure that gets a
///   reference to the step's output and returns `Result<(), E>` for any
///   `E: Display`.
/// - Last, the body: an `async { .. }` block that returns `Result<T, E>`,
///   where `E` is the saga's own error type. It is evaluated again for each
///   attempt, so it sees every saga name by reference (`trip` is a `&Trip`
///   inside it), as a step's arguments must be re-evaluable.
/// - `T`, the output, is the type written on the `let` (`let hold: Hold = ..`),
///   or `()` for `let _ = ..` and a bare statement.
///
/// It is read by `#[saga]`, like the rest of the body; used anywhere else, it
/// is a compile error.
#[macro_export]
macro_rules! inline {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`sagaflow::inline!` is a step written inside a `#[saga]` body, as a whole statement: `let x: T = sagaflow::inline!(name, read_only, async { .. })?;`"
        )
    };
}

/// Not public API: the graph callback of an inline step, whose declaration
/// `#[saga]` knows and passes as the selector (see `sagaflow-macros`' `graph_doc`).
#[doc(hidden)]
#[macro_export]
macro_rules! __sagaflow_graph_inline {
    (@sagaflow_graph { $($info:tt)* } [ { { $($next:tt)* } { $($selector:tt)* } } $($rest:tt)* ] [ $($acc:tt)* ]) => {
        $($next)* ! ( @sagaflow_graph $($selector)* [ $($rest)* ] [ $($acc)* { $($info)* } ] )
    };
    (@sagaflow_graph { $($info:tt)* } [] [ $($acc:tt)* ]) => {
        $crate::__private::saga_graph_doc! ( $($acc)* { $($info)* } )
    };
}
