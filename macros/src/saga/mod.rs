//! `#[saga]`: turns an `async fn` made of step calls into a state machine.
//!
//! One file per phase: parse the signature ([`signature`]) and the body
//! ([`body`], with the names it binds in [`scope`], and what it cannot hold yet
//! in [`unsupported`]) into a tree ([`ast`]);
//! analyse what each point reads and holds ([`analyse`]); check the rules about
//! the whole ([`check`]); expand it ([`expand`]: [`forward`], [`backward`],
//! [`durable`], [`doc`]). On a mistake, [`fallback`] emits the function as
//! written beside the errors.
//!
//! ```text
//! #[saga]
//! async fn book_trip(airline: &Airline, trip: Trip) -> Result<Itinerary, E> {
//!     let flight = book_flight(airline, &trip).await?;
//!     let total: u64 = flight.price + 10;
//!     let payment = charge(airline, total).await?;
//!     Ok(Itinerary { flight, payment })
//! }
//! ```
//! becomes
//! ```text
//! async fn book_trip(airline: &Airline, trip: Trip) -> Result<Itinerary, SagaError<E>> {
//!     run_in_memory(BookTripSaga::new(airline, trip)).await
//! }
//! struct BookTripSaga<'r> { airline: &'r Airline, trip: Trip }
//! enum State<'r> {
//!     B1 { airline, trip, flight, failure },     // step 1 failed: undo step 0
//! }
//! impl Saga for BookTripSaga<'_> {
//!     // forward: straight-line code, one resume point per step
//!     let mut state = 'forward: {
//!         let Self { airline, trip } = self;
//!         let flight = match run.step(book_flight, 0, &mut || book_flight(airline, &trip)).await {
//!             Ok(flight) => flight,
//!             Err(failure) => return Err(run.failed(failure).await),
//!         };
//!         let (total,) = { let total: u64 = flight.price + 10; (total,) };
//!         let payment = match run.step(charge, 1, &mut || charge(airline, total)).await {
//!             Ok(payment) => payment,
//!             Err(failure) => break 'forward State::B1 { airline, trip, flight, failure },
//!         };
//!         release(airline); release(trip); release(total);
//!         return Ok(Itinerary { flight, payment });
//!     };
//!     // backward: one state per compensation still to run
//!     loop { state = match state { B1 { .. } => { run.compensate(book_flight, ..).await; .. } } }
//! }
//! ```
//! Forward, each value stays where it was first put; the layout's forward state
//! `F<i>` says what is still needed before step `i` (the inputs and outputs that a
//! later step, local, the final `Ok(..)` or a compensation reads), and a value
//! that leaves it ends right there: released if no local between the two steps
//! reads it, else moved into the block that evaluates those locals, whose end
//! drops it (a local may have moved it). The locals between two steps live in
//! that block too, and only those still needed leave it, so a local used up
//! before the next step is not held across it, even if it was borrowed. rustc's
//! own state machine then keeps, at each step's resume point, the values live
//! there. Everything forward is inside the labeled block, so a failing step's
//! `break` drops what the compensations do not read before they run. A backward
//! state `B<i>` holds only what compensating steps `i-1 .. 0` read: their
//! arguments, evaluated again, and their outputs.

mod analyse;
mod arms;
mod ast;
mod backward;
mod body;
mod branch;
mod check;
mod condition;
mod doc;
mod durable;
mod expand;
mod exprs;
mod fallback;
mod forward;
mod generic;
mod group;
mod inline;
mod join;
mod method;
mod paths;
mod scope;
mod send;
mod signature;
mod tcc;
mod unsupported;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, ItemFn};

use crate::attr::parse_saga_attr;
use crate::ctxt::Ctxt;
use ast::Saga;
use scope::Scope;
pub(crate) use signature::{first_borrow, first_impl_trait, result_args};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[saga]` goes on an `async fn` whose body is a sequence of step calls",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    let cx = Ctxt::new();
    let attr = parse_saga_attr(&cx, args);
    let saga = build(&cx, &func, attr.name);
    match (cx.check(), saga) {
        (Ok(()), Some(saga)) => expand::generate(&saga),
        (result, _) => fallback::function(result.err(), func),
    }
}

// Parse, from the user's function to the tree:
//     #[saga] async fn book_trip(airline: &Airline, trip: Trip) -> Result<Itinerary, E> { .. }
// becomes
//     Saga { type_ident: BookTripSaga, params: [airline, trip], body: [Step, Local, ..], final_expr }

/// The saga read from `func`, or `None` if a mistake was reported.
fn build(cx: &Ctxt, func: &ItemFn, name: Option<Ident>) -> Option<Saga> {
    let sig = &func.sig;
    let mut scope = Scope::new(func);
    let signature = signature::read(cx, sig, &mut scope)?;
    let mut body = body::read(cx, &func.block, &mut scope);
    body.ok &= signature.ok;
    let final_expr = check::complete(cx, func, &mut body)?;
    let type_ident = name.unwrap_or_else(|| {
        Ident::new(
            &format!("{}Saga", signature::upper_camel(&sig.ident.to_string())),
            sig.ident.span(),
        )
    });
    Some(Saga {
        attrs: func.attrs.clone(),
        vis: func.vis.clone(),
        sig: sig.clone(),
        type_ident,
        lifetimes: signature.lifetimes,
        type_params: signature.type_params,
        needs_elided: signature.needs_elided || body.needs_elided,
        elided: scope.elided,
        params: signature.params,
        output_ty: signature.output_ty,
        error_ty: signature.error_ty,
        body: body.nodes,
        sends: body.sends,
        final_expr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(item: &str) -> String {
        expand(TokenStream::new(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn camel_case_names() {
        assert_eq!(signature::upper_camel("book_trip"), "BookTrip");
        assert_eq!(signature::upper_camel("r#type"), "Type");
        assert_eq!(signature::upper_camel("a__b_"), "AB");
    }

    #[test]
    fn shadowing_is_an_error() {
        let out = expand_str("async fn s(x: u32) -> Result<u32, E> { let x = a(x).await?; Ok(x) }");
        assert!(out.contains("already bound"), "{out}");
    }

    #[test]
    fn backward_state_keeps_only_what_compensation_reads() {
        let item: ItemFn = syn::parse_str(
            "async fn s(r: &R, t: T, unused: u8) -> Result<u32, E> {
                let a = one(r, &t).await?;
                let k: u32 = a.n + 1;
                let b = two(k).await?;
                let c = three(&b).await?;
                Ok(c)
            }",
        )
        .unwrap();
        let cx = Ctxt::new();
        let saga = build(&cx, &item, None).unwrap();
        cx.check().unwrap();
        let l = analyse::analyse(&saga).layout;
        let names = |v: &Vec<Ident>| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&l.forward[0]), ["r", "t"]);
        assert_eq!(names(&l.forward[1]), ["r", "t", "a", "k"]);
        assert_eq!(names(&l.forward[3]), ["r", "t", "a", "k", "b", "c"]);
        assert_eq!(names(&l.backward[1]), ["r", "t", "a"]);
        assert_eq!(names(&l.backward[2]), ["r", "t", "a", "k", "b"]);
    }

    #[test]
    fn the_way_back_follows_the_arm_taken() {
        let item: ItemFn = syn::parse_str(
            "async fn s(r: &R, t: T) -> Result<u32, E> {
                let a = one(r, &t).await?;
                let x = if t.fast {
                    two(r, &a).await?
                } else {
                    let q: u32 = t.n + 1;
                    let b = three(r, q).await?;
                    four(r, &b).await?
                };
                five(r, &x).await?;
                Ok(x)
            }",
        )
        .unwrap();
        let cx = Ctxt::new();
        let saga = build(&cx, &item, None).unwrap();
        cx.check().unwrap();
        let an = analyse::analyse(&saga);
        let p = &an.paths;
        use paths::Cont::{Dispatch, Fail, State};
        // Depth first: one, two | three, four, then five.
        assert_eq!(
            p.step_pred,
            [Fail, State(1), State(1), State(3), Dispatch(0)]
        );
        assert_eq!(p.branches[0].last, [State(2), State(4)]);
        let names = |v: &Vec<Ident>| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        // What undoing each arm reads of the names bound inside it.
        assert_eq!(names(&p.branches[0].data[0]), Vec::<String>::new());
        assert_eq!(names(&p.branches[0].data[1]), ["q", "b"]);
        // Undoing `four` reads the branch's value (first bound by `two`, so
        // ordered there) and, inside, `q` and `b`.
        assert_eq!(names(&p.backward[4]), ["r", "t", "a", "x", "q", "b"]);
        // After the branch: the arms value instead of the arm's names.
        assert_eq!(
            names(&p.backward[5]),
            ["r", "t", "a", "x", "__sagaflow_arms0", "__sagaflow_output4"]
        );
        // `five` is last and nothing is sent: no state undoes it.
        assert_eq!(p.reachable, [false, true, true, true, true, false]);
    }
}
