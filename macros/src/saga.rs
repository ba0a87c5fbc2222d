//! `#[saga]`: turns an `async fn` made of step calls into a state machine.
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

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Expr, FnArg, GenericParam, Ident, ItemFn, Pat, ReturnType, Stmt, Token, Type};

use crate::attr::parse_saga_attr;
use crate::ctxt::Ctxt;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func: ItemFn = match syn::parse2(item.clone()) {
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
    let model = Model::build(&cx, &func, attr.name);
    match (cx.check(), model) {
        (Ok(()), Some(model)) => generate(&model),
        (result, _) => {
            let errors = result.err().map(|e| e.to_compile_error());
            // The function as written is ordinary async Rust: emitting it keeps the
            // rest of the crate compiling, so only the saga's own errors show.
            let returns_result =
                matches!(&func.sig.output, ReturnType::Type(_, ty) if result_args(ty).is_some());
            if func.sig.asyncness.is_none() && !returns_result {
                // Likely a hand-made future (`-> impl Future<..> { async move { .. } }`):
                // left as written, since made async it would only add errors.
                return quote!(#errors #func);
            }
            func.sig.asyncness.get_or_insert_with(Default::default);
            for stmt in &mut func.block.stmts {
                if let Stmt::Local(local) = stmt {
                    strip_mut(&mut local.pat);
                }
            }
            if !returns_result {
                // The body's `?`s would only add errors about the return type.
                func.block =
                    syn::parse_quote!({ ::core::unreachable!("this saga did not compile") });
                func.attrs
                    .push(syn::parse_quote!(#[allow(unused_variables)]));
            }
            quote!(#errors #func)
        }
    }
}

fn strip_mut(pat: &mut Pat) {
    match pat {
        Pat::Ident(pi) => pi.mutability = None,
        Pat::Type(pt) => strip_mut(&mut pt.pat),
        _ => {}
    }
}

struct Param {
    name: Ident,
    /// The type as written, for the function wrapper.
    ty: Type,
    /// The type with elided lifetimes named, for the generated types.
    state_ty: Type,
}

struct StepCall {
    binding: Ident,
    /// False for `let _ = ..` and a bare call, whose output gets a generated name.
    named_by_user: bool,
    binding_ty: Option<Type>,
    path: syn::Path,
    call: syn::ExprCall,
    question: Token![?],
}

struct Local {
    name: Ident,
    ty: Type,
    expr: Expr,
}

/// The saga, read from the user's function, spans kept.
struct Model {
    attrs: Vec<syn::Attribute>,
    vis: syn::Visibility,
    sig: syn::Signature,
    type_ident: Ident,
    lifetimes: Vec<syn::Lifetime>,
    needs_elided: bool,
    params: Vec<Param>,
    output_ty: Type,
    error_ty: Type,
    steps: Vec<StepCall>,
    /// `locals[i]` are evaluated on the way into forward state `i`.
    locals: Vec<Vec<Local>>,
    final_expr: Expr,
}

const BODY_HELP: &str = "a saga body holds only step calls (`let x = step(args).await?;` or `step(args).await?;`), typed locals (`let x: T = expr;`) and a final `Ok(..)`";

fn elided_lifetime() -> syn::Lifetime {
    syn::Lifetime::new("'__sagaflow_r", Span::call_site())
}

/// Names the lifetimes that the user left out, so that the types can live in a struct.
struct NameElided {
    found: bool,
}

impl VisitMut for NameElided {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(elided_lifetime());
            self.found = true;
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident == "_" {
            *l = elided_lifetime();
            self.found = true;
        }
    }

    fn visit_type_impl_trait_mut(&mut self, _: &mut syn::TypeImplTrait) {}
}

/// Names every elided lifetime of a type `'__sagaflow_x`, the lifetime that
/// [`durable_send_bounds`] quantifies over.
struct AnyLifetime;

impl VisitMut for AnyLifetime {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(syn::Lifetime::new("'__sagaflow_x", Span::call_site()));
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident == "_" {
            *l = syn::Lifetime::new("'__sagaflow_x", Span::call_site());
        }
    }
}

/// The first `impl Trait` inside a type.
pub(crate) fn first_impl_trait(ty: &Type) -> Option<&syn::TypeImplTrait> {
    struct Finder<'a>(Option<&'a syn::TypeImplTrait>);
    impl<'ast> Visit<'ast> for Finder<'ast> {
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert(t);
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// The first borrow inside a type: a reference or a lifetime other than `'static`.
/// It decides both whether an owned saga input borrows and whether a step's
/// output does.
pub(crate) fn first_borrow(ty: &Type) -> Option<TokenStream> {
    struct Finder(Option<TokenStream>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            if self.0.is_none() {
                match &r.lifetime {
                    Some(l) if l.ident == "static" => {}
                    Some(l) => self.0 = Some(l.to_token_stream()),
                    None => self.0 = Some(r.and_token.to_token_stream()),
                }
            }
            syn::visit::visit_type_reference(self, r);
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if self.0.is_none() && l.ident != "static" {
                self.0 = Some(l.to_token_stream());
            }
        }
        // An `impl Trait` parameter is reported on its own.
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {}
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

fn upper_camel(name: &str) -> String {
    let name = name.strip_prefix("r#").unwrap_or(name);
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

enum Parsed {
    Step(StepCall),
    Local(Local),
    Final(Expr),
    Skip,
}

impl Model {
    fn build(cx: &Ctxt, func: &ItemFn, name: Option<Ident>) -> Option<Model> {
        let sig = &func.sig;
        let mut ok = true;
        if sig.asyncness.is_none() {
            cx.error_spanned_by(
                sig.fn_token,
                format!(
                    "a saga must be an `async fn`: write `async fn {}`",
                    sig.ident
                ),
            );
            ok = false;
        }
        let mut lifetimes = Vec::new();
        for param in &sig.generics.params {
            match param {
                GenericParam::Lifetime(l) => lifetimes.push(l.lifetime.clone()),
                _ => {
                    cx.error_spanned_by(
                        param,
                        "a saga cannot be generic yet: its state types must be concrete; take the concrete types, or a `&dyn Trait` resource",
                    );
                    ok = false;
                }
            }
        }
        let (output_ty, error_ty) = match &sig.output {
            ReturnType::Type(_, ty) => match result_args(ty) {
                Some((_, Type::Path(e)))
                    if e.path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "SagaError") =>
                {
                    cx.error_spanned_by(
                        e,
                        "write the saga's own error type here, as in `Result<Itinerary, TripError>`: the generated function returns `Result<Itinerary, SagaError<TripError>>` itself",
                    );
                    return None;
                }
                Some(pair) => pair,
                None => {
                    cx.error_spanned_by(
                        ty,
                        "a saga returns `Result<T, E>` with both types written out; the generated function returns `Result<T, sagaflow::SagaError<E>>`",
                    );
                    return None;
                }
            },
            ReturnType::Default => {
                cx.error_spanned_by(
                    &sig.ident,
                    format!(
                        "a saga returns `Result<T, E>`: add `-> Result<T, E>` to `{}`",
                        sig.ident
                    ),
                );
                return None;
            }
        };

        let mut names: HashSet<String> = HashSet::new();
        let mut params = Vec::new();
        let mut needs_elided = false;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    cx.error_spanned_by(r, "a saga must be a free `async fn`, not a method");
                    ok = false;
                }
                FnArg::Typed(pt) => {
                    let ident = match &*pt.pat {
                        Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                            if let Some(m) = pi.mutability {
                                cx.error_spanned_by(
                                    m,
                                    "saga inputs are immutable (steps see them again on retry and compensation): remove `mut`",
                                );
                                ok = false;
                            }
                            pi.ident.clone()
                        }
                        other => {
                            cx.error_spanned_by(
                                other,
                                "a saga's parameters must be plain names, such as `trip: Trip`; destructure in the steps instead",
                            );
                            ok = false;
                            continue;
                        }
                    };
                    if let Type::Reference(r) = &*pt.ty
                        && let Some(m) = r.mutability
                    {
                        cx.error_spanned_by(
                                quote!(#m),
                                "a saga cannot take `&mut`: a reference parameter is a resource (a client, a pool) that every step and compensation shares; take `&T` and use interior mutability inside it",
                            );
                        ok = false;
                    }
                    if let Some(imp) = first_impl_trait(&pt.ty) {
                        cx.error_spanned_by(
                            imp,
                            format!(
                                "a saga parameter cannot be `impl Trait`: the generated saga type stores `{ident}`, so it needs a concrete type; take a concrete type, or a `&dyn Trait` resource"
                            ),
                        );
                        ok = false;
                        continue;
                    }
                    if !matches!(&*pt.ty, Type::Reference(_))
                        && let Some(borrow) = first_borrow(&pt.ty)
                    {
                        cx.error_spanned_by(
                            borrow,
                            format!(
                                "`{ident}` is an owned saga input, which is data: a durable saga persists it and rebuilds it on recovery, so its type cannot borrow; make it own what it holds (`String` for `&str`, `Arc<T>` for `&T`), or take a shared resource as a plain `&T` parameter"
                            ),
                        );
                        ok = false;
                    }
                    check_name(cx, &ident, &mut names);
                    let mut state_ty = (*pt.ty).clone();
                    let mut namer = NameElided { found: false };
                    namer.visit_type_mut(&mut state_ty);
                    needs_elided |= namer.found;
                    params.push(Param {
                        name: ident,
                        ty: (*pt.ty).clone(),
                        state_ty,
                    });
                }
            }
        }

        let mut steps = Vec::new();
        let mut locals: Vec<Vec<Local>> = vec![Vec::new()];
        let mut final_expr = None;
        let count = func.block.stmts.len();
        for (i, stmt) in func.block.stmts.iter().enumerate() {
            let last = i + 1 == count;
            if final_expr.is_some() {
                cx.error_spanned_by(stmt, "nothing may follow the final `Ok(..)` of a saga");
                ok = false;
                continue;
            }
            match parse_stmt(cx, stmt, last, steps.len()) {
                Parsed::Step(step) => {
                    if step.named_by_user {
                        check_name(cx, &step.binding, &mut names);
                    }
                    steps.push(step);
                    locals.push(Vec::new());
                }
                Parsed::Local(mut local) => {
                    check_name(cx, &local.name, &mut names);
                    if let Some(borrow) = first_borrow(&local.ty) {
                        // A borrow of a resource (a `&T` input) is fine; a borrow of
                        // anything the saga holds itself would make it self-referential.
                        let held: HashSet<String> = params
                            .iter()
                            .filter(|p| !matches!(p.ty, Type::Reference(_)))
                            .map(|p| p.name.to_string())
                            .chain(locals.iter().flatten().map(|l| l.name.to_string()))
                            .chain(steps.iter().map(|s| s.binding.to_string()))
                            .collect();
                        // Only the plain forms (`&trip.code`, `trip.code.as_str()`): a
                        // `&'static` value computed from held names is fine.
                        let borrowed_part = match &local.expr {
                            Expr::Reference(r) => Some(&*r.expr),
                            Expr::MethodCall(m)
                                if ["as_str", "as_ref", "as_slice", "as_bytes", "as_deref"]
                                    .iter()
                                    .any(|name| m.method == name) =>
                            {
                                Some(&*m.receiver)
                            }
                            _ => None,
                        };
                        if let Some(from) =
                            borrowed_part.and_then(|part| names_used(part, &held).into_iter().min())
                        {
                            cx.error_spanned_by(
                                borrow,
                                format!(
                                    "a saga local cannot borrow from `{from}`, which the saga itself holds (the saga would borrow from itself); pass the borrow to the step directly, as in `step(&{from}.field)`, or make the local own its value (`String` for `&str`, or `.clone()`)"
                                ),
                            );
                            ok = false;
                            continue;
                        }
                    }
                    let mut namer = NameElided { found: false };
                    namer.visit_type_mut(&mut local.ty);
                    needs_elided |= namer.found;
                    if let Some(slot) = locals.last_mut() {
                        slot.push(local);
                    }
                }
                Parsed::Final(expr) => final_expr = Some(expr),
                Parsed::Skip => ok = false,
            }
        }
        if steps.is_empty() && ok {
            cx.error_spanned_by(
                &sig.ident,
                "a saga needs at least one step: call a `#[step]` function as `let x = step(args).await?;`",
            );
            ok = false;
        }
        let final_expr = match final_expr {
            Some(e) => e,
            None => {
                if ok {
                    let span = func
                        .block
                        .stmts
                        .last()
                        .map(|s| s.span())
                        .unwrap_or_else(|| func.block.brace_token.span.close());
                    cx.error_at(
                        span,
                        "a saga body ends with `Ok(value)`, the value the saga returns when every step succeeded",
                    );
                }
                return None;
            }
        };
        if !ok {
            return None;
        }
        let type_ident = name.unwrap_or_else(|| {
            Ident::new(
                &format!("{}Saga", upper_camel(&sig.ident.to_string())),
                sig.ident.span(),
            )
        });
        Some(Model {
            attrs: func.attrs.clone(),
            vis: func.vis.clone(),
            sig: sig.clone(),
            type_ident,
            lifetimes,
            needs_elided,
            params,
            output_ty,
            error_ty,
            steps,
            locals,
            final_expr,
        })
    }
}

fn check_name(cx: &Ctxt, ident: &Ident, names: &mut HashSet<String>) {
    let name = ident.to_string();
    if name.starts_with("__sagaflow") {
        cx.error_spanned_by(
            ident,
            "names starting with `__sagaflow` are reserved for generated code",
        );
    } else if !names.insert(name.clone()) {
        cx.error_spanned_by(
            ident,
            format!(
                "`{name}` is already bound in this saga; a saga keeps its values until it ends (compensations read them), so names cannot be shadowed: use another name"
            ),
        );
    }
}

fn result_args(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let (t, e) = (types.next()?, types.next()?);
    types.next().is_none().then_some((t, e))
}

/// Reads `EXPR.await?` as a step call, reporting what is missing when it is almost one.
fn step_call(cx: &Ctxt, expr: &Expr) -> Option<Option<(syn::Path, syn::ExprCall, Token![?])>> {
    match expr {
        Expr::Try(t) => match &*t.expr {
            Expr::Await(a) => match &*a.base {
                Expr::Call(call) => match &*call.func {
                    Expr::Path(p) if p.qself.is_none() => {
                        if let Some(seg) = p.path.segments.iter().find(|s| !s.arguments.is_none()) {
                            cx.error_spanned_by(
                                &seg.arguments,
                                "steps are not generic: call the step without `::<..>`",
                            );
                            return Some(None);
                        }
                        let mut ok = true;
                        for arg in &call.args {
                            if let Expr::Reference(r) = arg
                                && !is_place(&r.expr)
                            {
                                cx.error_spanned_by(
                                        arg,
                                        "a step argument cannot borrow a temporary: arguments are evaluated again for each retry and for the compensation, so they must borrow something the saga keeps; bind it first as a typed local (`let value: T = ..;`) and pass `&value`",
                                    );
                                ok = false;
                            }
                        }
                        if !ok {
                            return Some(None);
                        }
                        Some(Some((p.path.clone(), call.clone(), t.question_token)))
                    }
                    other => {
                        cx.error_spanned_by(
                            other,
                            "a saga can only await a call to a `#[step]` function by its name, as in `book_flight(&trip).await?`",
                        );
                        Some(None)
                    }
                },
                Expr::MethodCall(m) => {
                    cx.error_spanned_by(
                        &m.method,
                        format!(
                            "`{}` is a method, and a saga can only await calls to `#[step]` functions, as in `book_flight(&trip).await?`",
                            m.method
                        ),
                    );
                    Some(None)
                }
                other => {
                    cx.error_spanned_by(
                        other,
                        "a saga can only await a call to a `#[step]` function, as in `book_flight(&trip).await?`",
                    );
                    Some(None)
                }
            },
            Expr::Call(call) if matches!(&*call.func, Expr::Path(_)) => {
                let func = &call.func;
                let name = func.to_token_stream().to_string().replace(' ', "");
                cx.error_spanned_by(
                    t,
                    format!(
                        "`?` without `.await`: if `{name}` is a `#[step]`, write `{name}(..).await?`; any other fallible call must be made a `#[step]` (for example `#[step(read_only)]`), since its failure has to compensate the steps before it"
                    ),
                );
                Some(None)
            }
            _ => None,
        },
        Expr::Await(a) => {
            cx.error_spanned_by(
                a,
                "add `?` after `.await`: a step's failure ends the saga and starts its compensation, so write `step(args).await?`",
            );
            Some(None)
        }
        _ => None,
    }
}

/// Whether `&expr` borrows a place that outlives the step call (a name, a field or
/// an element of one, a dereference, a literal), rather than a temporary.
fn is_place(expr: &Expr) -> bool {
    match expr {
        Expr::Path(_) | Expr::Lit(_) => true,
        Expr::Field(f) => is_place(&f.base),
        Expr::Index(i) => is_place(&i.expr),
        Expr::Paren(p) => is_place(&p.expr),
        Expr::Group(g) => is_place(&g.expr),
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Deref(_)),
        _ => false,
    }
}

/// Whether `expr` is `Ok(value)`, the form a saga body ends with.
fn is_ok_call(expr: &Expr) -> bool {
    matches!(expr, Expr::Call(call)
        if matches!(&*call.func, Expr::Path(p) if p.qself.is_none() && p.path.is_ident("Ok"))
            && call.args.len() == 1)
}

/// A local's value or the final `Ok(..)`'s is plain computation: it cannot leave
/// the saga early, by `return` or by `?`, which would end the run without
/// recording it or compensating its steps. Closures and async blocks inside it
/// are their own functions, so their `return`s and `?`s are theirs.
fn check_plain_expr(cx: &Ctxt, expr: &Expr) -> bool {
    struct Finder<'c> {
        cx: &'c Ctxt,
        ok: bool,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_expr_return(&mut self, r: &'ast syn::ExprReturn) {
            self.cx.error_spanned_by(
                r.return_token,
                "a saga cannot `return` from a local or from its final `Ok(..)`: the run would end without being recorded or compensated; make the check a `#[step(read_only)]` that returns `Err(..)`",
            );
            self.ok = false;
        }
        fn visit_expr_try(&mut self, t: &'ast syn::ExprTry) {
            self.cx.error_spanned_by(
                t.question_token,
                "`?` here would end the saga without compensating its steps: make the fallible computation a `#[step]` (for example `#[step(read_only)]`), or handle its error in the expression (for example `.unwrap_or(..)`)",
            );
            self.ok = false;
            syn::visit::visit_expr_try(self, t);
        }
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut finder = Finder { cx, ok: true };
    finder.visit_expr(expr);
    finder.ok
}

/// Whether `expr` awaits anything, which only a step call may do.
fn contains_await(expr: &Expr) -> Option<Span> {
    struct Finder(Option<Span>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_expr_await(&mut self, a: &'ast syn::ExprAwait) {
            self.0.get_or_insert(a.await_token.span);
        }
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    }
    let mut f = Finder(None);
    f.visit_expr(expr);
    f.0
}

fn parse_stmt(cx: &Ctxt, stmt: &Stmt, last: bool, index: usize) -> Parsed {
    // An outer attribute starts the statement's tokens: `#[cfg(..)] let ..`.
    let mut tokens = stmt.to_token_stream().into_iter();
    if let (Some(TokenTree::Punct(hash)), Some(TokenTree::Group(body))) =
        (tokens.next(), tokens.next())
        && hash.as_char() == '#'
    {
        let attr = quote!(#hash #body);
        cx.error_spanned_by(
            attr,
            "attributes on saga statements are not supported: a `#[cfg]` here would be ignored and the step would still run; declare one saga per configuration (a `//` comment is fine)",
        );
        return Parsed::Skip;
    }
    match stmt {
        Stmt::Local(local) => {
            let Some(init) = &local.init else {
                cx.error_spanned_by(local, "a saga local needs a value: `let x: T = expr;`");
                return Parsed::Skip;
            };
            if let Some((_, diverge)) = &init.diverge {
                cx.error_spanned_by(
                    diverge,
                    "`let .. else` is not part of a saga body; ".to_owned() + BODY_HELP,
                );
                return Parsed::Skip;
            }
            let (pat, ty) = match &local.pat {
                Pat::Type(pt) => (&*pt.pat, Some((*pt.ty).clone())),
                other => (other, None),
            };
            let binding = match pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                    if let Some(m) = pi.mutability {
                        cx.error_spanned_by(
                            m,
                            "saga locals are immutable (compensations read them again later): remove `mut`",
                        );
                        return Parsed::Skip;
                    }
                    Some(pi.ident.clone())
                }
                Pat::Wild(_) => None,
                other => {
                    cx.error_spanned_by(
                        other,
                        "bind a step's output or a local to one name, as in `let booking = ..`; read its fields in later expressions",
                    );
                    return Parsed::Skip;
                }
            };
            match step_call(cx, &init.expr) {
                Some(Some((path, call, question))) => Parsed::Step(StepCall {
                    named_by_user: binding.is_some(),
                    binding: binding.unwrap_or_else(|| format_ident!("__sagaflow_output{}", index)),
                    binding_ty: ty,
                    path,
                    call,
                    question,
                }),
                Some(None) => Parsed::Skip,
                None => {
                    if let Some(span) = contains_await(&init.expr) {
                        cx.error_at(
                            span,
                            "a step call is a whole statement, as in `let flight = book_flight(args).await?;`: read its output's fields in a later typed local, and leave its failure to the saga (no `match` or `unwrap`): it ends the saga and compensates the steps before it",
                        );
                        return Parsed::Skip;
                    }
                    if !check_plain_expr(cx, &init.expr) {
                        return Parsed::Skip;
                    }
                    match (binding, ty) {
                        (Some(name), Some(ty)) => Parsed::Local(Local {
                            name,
                            ty,
                            expr: (*init.expr).clone(),
                        }),
                        (Some(name), None) => {
                            cx.error_spanned_by(
                                &name,
                                format!(
                                    "a saga local needs its type written out, as in `let {name}: u64 = ..;`: it becomes part of the saga's state (or, if this is meant to be a step call, write `step(args).await?`)"
                                ),
                            );
                            Parsed::Skip
                        }
                        (None, _) => {
                            cx.error_spanned_by(
                                &local.pat,
                                "`let _ = ..` in a saga is only for step calls whose output is not read: `let _ = step(args).await?;`",
                            );
                            Parsed::Skip
                        }
                    }
                }
            }
        }
        Stmt::Expr(expr, Some(semi)) if last && is_ok_call(expr) => {
            cx.error_spanned_by(
                semi,
                "end the saga with `Ok(..)` itself, without `;`: it is the value the saga returns",
            );
            Parsed::Skip
        }
        Stmt::Expr(Expr::Return(r), Some(_))
            if last && r.expr.as_deref().is_some_and(is_ok_call) =>
        {
            cx.error_spanned_by(
                r.return_token,
                "end the saga with `Ok(..)` itself, without `return` and without `;`",
            );
            Parsed::Skip
        }
        Stmt::Expr(expr, Some(_)) => match step_call(cx, expr) {
            Some(Some((path, call, question))) => Parsed::Step(StepCall {
                named_by_user: false,
                binding: format_ident!("__sagaflow_output{}", index),
                binding_ty: None,
                path,
                call,
                question,
            }),
            Some(None) => Parsed::Skip,
            None => {
                cx.error_spanned_by(expr, BODY_HELP);
                Parsed::Skip
            }
        },
        Stmt::Expr(expr, None) => {
            if is_ok_call(expr)
                && let Expr::Call(call) = expr
            {
                if let Some(span) = contains_await(&call.args[0]) {
                    cx.error_at(
                        span,
                        "the final `Ok(..)` cannot await; call steps before it",
                    );
                    return Parsed::Skip;
                }
                if !check_plain_expr(cx, &call.args[0]) {
                    return Parsed::Skip;
                }
                return Parsed::Final(call.args[0].clone());
            }
            if last
                && let Expr::Return(r) = expr
                && r.expr.as_deref().is_some_and(is_ok_call)
            {
                cx.error_spanned_by(
                    r.return_token,
                    "end the saga with `Ok(..)` itself, without `return`",
                );
                return Parsed::Skip;
            }
            if last {
                cx.error_spanned_by(
                    expr,
                    "a saga body ends with `Ok(value)`, the value the saga returns when every step succeeded",
                );
            } else {
                cx.error_spanned_by(expr, BODY_HELP);
            }
            Parsed::Skip
        }
        Stmt::Item(item) => {
            cx.error_spanned_by(
                item,
                "items cannot be declared inside a saga body: move it out of the function",
            );
            Parsed::Skip
        }
        Stmt::Macro(m) => {
            cx.error_spanned_by(m, BODY_HELP);
            Parsed::Skip
        }
    }
}

/// The saga names an expression reads.
fn names_used(tokens: &impl ToTokens, known: &HashSet<String>) -> HashSet<String> {
    // Walking tokens instead of the syntax tree also sees names inside macro calls
    // such as `format!("{}", trip.id)`, and the names a format string captures
    // (`format!("{trip}")`) are read out of string literals. Keeping a name that
    // only looks used costs a field; missing one would fail to compile, so
    // over-approximation is the safe side.
    fn walk(stream: TokenStream, known: &HashSet<String>, out: &mut HashSet<String>) {
        // How many dots stand right before this token: one is a field access
        // (`x.trip` does not read `trip`), two or three are a range (`..trip`).
        let mut dots = 0;
        for tt in stream {
            match &tt {
                TokenTree::Group(g) => walk(g.stream(), known, out),
                TokenTree::Ident(i) => {
                    let s = i.to_string();
                    if dots != 1 && known.contains(&s) {
                        out.insert(s);
                    }
                }
                TokenTree::Literal(lit) => {
                    if let Ok(text) = syn::parse_str::<syn::LitStr>(&lit.to_string()) {
                        captured_in_format(&text.value(), known, out);
                    }
                }
                TokenTree::Punct(_) => {}
            }
            dots = match &tt {
                TokenTree::Punct(p) if p.as_char() == '.' => dots + 1,
                _ => 0,
            };
        }
    }
    let mut out = HashSet::new();
    walk(tokens.to_token_stream(), known, &mut out);
    out
}

/// The saga names a format string captures: `{trip}`, `{trip:?}`, `{0:>width$}`.
fn captured_in_format(text: &str, known: &HashSet<String>, out: &mut HashSet<String>) {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(escaped) = rest.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        let end = rest.find('}').unwrap_or(rest.len());
        // The argument and a `width$` or `precision$` may each name a value.
        for word in rest[..end].split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if known.contains(word) {
                out.insert(word.to_owned());
            }
        }
        rest = &rest[end..];
    }
}

struct Layout {
    /// Fields of forward state `i`, for `i` in `0..=steps`.
    forward: Vec<Vec<Ident>>,
    /// Fields of backward state `i`, for `i` in `1..steps` (index 0 unused).
    backward: Vec<Vec<Ident>>,
}

fn layout(model: &Model) -> Layout {
    let n = model.steps.len();
    // Every name with its position: the forward state where it is first held.
    let mut order: Vec<(Ident, usize, bool)> = Vec::new();
    for p in &model.params {
        order.push((p.name.clone(), 0, false));
    }
    for (i, slot) in model.locals.iter().enumerate() {
        for local in slot {
            order.push((local.name.clone(), i, false));
        }
        if i < n {
            order.push((model.steps[i].binding.clone(), i + 1, true));
        }
    }
    // `order` interleaves locals and outputs in source order except for the
    // output of step `i`, which comes before the locals of slot `i + 1`.
    order.sort_by_key(|(_, pos, is_output)| (*pos, !*is_output));
    let known: HashSet<String> = order.iter().map(|(i, _, _)| i.to_string()).collect();
    let step_uses: Vec<HashSet<String>> = model
        .steps
        .iter()
        .map(|s| names_used(&s.call.args, &known))
        .collect();
    let any_step_use: HashSet<String> = step_uses.iter().flatten().cloned().collect();
    // local_uses[j]: names read by the locals evaluated on the way into state j;
    // index n + 1 stands for the final `Ok(..)`.
    let mut local_uses: Vec<HashSet<String>> = model
        .locals
        .iter()
        .map(|slot| {
            let mut set = HashSet::new();
            for l in slot {
                set.extend(names_used(&l.expr, &known));
            }
            set
        })
        .collect();
    local_uses.push(names_used(&model.final_expr, &known));

    let forward = (0..=n)
        .map(|i| {
            order
                .iter()
                .filter(|(name, pos, is_output)| {
                    let s = name.to_string();
                    *pos <= i
                        && (*is_output
                            || any_step_use.contains(&s)
                            || local_uses.iter().skip(i + 1).any(|u| u.contains(&s)))
                })
                .map(|(name, _, _)| name.clone())
                .collect()
        })
        .collect();
    let backward = (0..n)
        .map(|i| {
            order
                .iter()
                .filter(|(name, pos, is_output)| {
                    let s = name.to_string();
                    *pos <= i && (*is_output || step_uses.iter().take(i).any(|u| u.contains(&s)))
                })
                .map(|(name, _, _)| name.clone())
                .collect()
        })
        .collect();
    Layout { forward, backward }
}

fn generate(model: &Model) -> TokenStream {
    let Model {
        attrs,
        vis,
        sig,
        type_ident,
        params,
        output_ty,
        error_ty,
        steps,
        locals,
        final_expr,
        ..
    } = model;
    let fn_ident = &sig.ident;
    let saga_name = fn_ident.to_string();
    let n = steps.len();
    let layout = layout(model);
    let known = all_names(model);

    let mut lifetimes: Vec<syn::Lifetime> = Vec::new();
    if model.needs_elided {
        lifetimes.push(elided_lifetime());
    }
    lifetimes.extend(model.lifetimes.iter().cloned());
    let generics = if lifetimes.is_empty() {
        quote!()
    } else {
        quote!(<#(#lifetimes),*>)
    };
    let marker_ty = quote!(::core::marker::PhantomData<fn() -> (#(&#lifetimes (),)*)>);

    // Field types of every name the state can hold.
    let mut types: std::collections::HashMap<String, TokenStream> = Default::default();
    for p in params {
        let ty = &p.state_ty;
        types.insert(p.name.to_string(), quote!(#ty));
    }
    for slot in locals {
        for l in slot {
            let ty = &l.ty;
            types.insert(l.name.to_string(), quote!(#ty));
        }
    }
    for s in steps {
        let path = &s.path;
        types.insert(
            s.binding.to_string(),
            quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::Output),
        );
    }
    let field_decls = |fields: &[Ident]| -> Vec<TokenStream> {
        fields
            .iter()
            .map(|f| {
                let ty = types.get(&f.to_string()).cloned().unwrap_or_default();
                quote!(#f: #ty)
            })
            .collect()
    };

    let backward_variants: Vec<Ident> = (0..n).map(|i| format_ident!("B{}", i)).collect();

    let mut variants = Vec::new();
    for (v, fields) in backward_variants.iter().zip(&layout.backward).skip(1) {
        let decls = field_decls(fields);
        variants.push(
            quote!(#v { #(#decls,)* __sagaflow_failure: ::sagaflow::StepFailure<#error_ty> }),
        );
    }
    let marker_variant = if lifetimes.is_empty() {
        quote!()
    } else {
        quote!(__SagaflowMarker(::core::convert::Infallible, #marker_ty),)
    };
    let marker_arm = if lifetimes.is_empty() {
        quote!()
    } else {
        quote!(__SagaflowState::__SagaflowMarker(never, _) => match never {},)
    };

    // The code between two steps (`slot` 0 is before the first): its locals, then
    // the end of every value that the forward layout stops holding there.
    // `alive` are the names held on the way in. A local's expression may move a
    // name that dies here, so such a name is first moved into a block of its own,
    // with the slot's locals: the block's end drops what is left of them. The
    // locals that are still needed leave the block, once, as a tuple; the others,
    // even when they were borrowed, are gone before the next step, so the saga's
    // future holds them across no step. A name that dies here and that no local
    // reads is released, which drops it.
    let slot_code = |slot: usize, alive: &[Ident]| -> TokenStream {
        let keep = &layout.forward[slot];
        let declared: Vec<&Local> = locals[slot].iter().collect();
        let mut read_by_locals: HashSet<String> = HashSet::new();
        for l in &declared {
            read_by_locals.extend(names_used(&l.expr, &known));
        }
        let dying: Vec<&Ident> = alive.iter().filter(|n| !keep.contains(n)).collect();
        let moved_in: Vec<&Ident> = dying
            .iter()
            .copied()
            .filter(|n| read_by_locals.contains(&n.to_string()))
            .collect();
        // Latest first, as a scope drops its locals.
        let released: Vec<&Ident> = dying
            .iter()
            .rev()
            .copied()
            .filter(|n| !read_by_locals.contains(&n.to_string()))
            .collect();
        let release = quote!(#(::sagaflow::__private::release(#released);)*);
        if declared.is_empty() {
            return release;
        }
        let kept: Vec<&Ident> = declared
            .iter()
            .map(|l| &l.name)
            .filter(|n| keep.contains(n))
            .collect();
        let lets = declared
            .iter()
            .map(|Local { name, ty, expr }| quote!(let #name: #ty = #expr;));
        let moved_in = quote!(#(#[allow(unused_variables)] let #moved_in = #moved_in;)*);
        if kept.is_empty() {
            return quote! {
                {
                    #moved_in
                    #(#lets)*
                }
                #release
            };
        }
        quote! {
            let (#(#kept,)*) = {
                #moved_in
                #(#lets)*
                (#(#kept,)*)
            };
            #release
        }
    };

    // Forward, the body is straight-line code: each value stays where it was
    // first put, and rustc's own state machine keeps, at each step's resume point,
    // the values that are live there. An explicit forward state, rebuilt at every
    // step, made each step move every value the saga held (and read them back
    // wide right after writing them narrow: a store-forwarding stall per step).
    let inputs: Vec<Ident> = params.iter().map(|p| p.name.clone()).collect();
    let mut forward_code = vec![slot_code(0, &inputs)];
    for (i, step) in steps.iter().enumerate() {
        let StepCall {
            binding,
            binding_ty,
            named_by_user: _,
            path,
            call,
            question,
        } = step;
        let index = i as u32;
        let typed = binding_ty
            .as_ref()
            .map(|ty| quote!(let #binding: #ty = #binding;));
        let call_span = call.span();
        let call = reusable_call(call, &known);
        let closure = quote_spanned!(call_span=> || #call);
        let q = question.span;
        let convert = quote_spanned! {q=>
            let __sagaflow_failure: ::sagaflow::StepFailure<#error_ty> =
                ::sagaflow::__private::step_error_converts_into_saga_error(__sagaflow_failure);
        };
        let on_failure = if i == 0 {
            quote!(return ::core::result::Result::Err(__sagaflow_run.failed(__sagaflow_failure).await);)
        } else {
            let b = &backward_variants[i];
            let b_fields = &layout.backward[i];
            quote!(break '__sagaflow_forward __SagaflowState::#b { #(#b_fields,)* __sagaflow_failure };)
        };
        let alive: Vec<Ident> = layout.forward[i]
            .iter()
            .chain(std::iter::once(binding))
            .cloned()
            .collect();
        let next_slot = slot_code(i + 1, &alive);
        // The closure goes by `&mut`: it stays where it was built, in the saga's
        // future, instead of being copied into the step's future. That copy, read
        // back wide right after it was written narrow, cost about 3 ns per step.
        forward_code.push(quote! {
            let #binding = match __sagaflow_run.step(<#path as ::sagaflow::Step>::__SAGAFLOW_MARKER, #index, &mut #closure).await {
                ::core::result::Result::Ok(#binding) => #binding,
                ::core::result::Result::Err(__sagaflow_failure) => {
                    #convert
                    #on_failure
                }
            };
            #typed
            #next_slot
        });
    }
    {
        forward_code.push(quote! {
            let __sagaflow_output: #output_ty = #final_expr;
            // In memory the end is a plain call: an await here, never taken,
            // still costs the state machine a resume point per saga.
            if <__SagaflowJournal as ::sagaflow::__private::Journal>::DURABLE {
                __sagaflow_run.committed(&__sagaflow_output).await;
            } else {
                __sagaflow_run.committed_in_memory();
            }
            return ::core::result::Result::Ok(__sagaflow_output);
        });
    }
    let mut arms = Vec::new();
    for (i, v) in backward_variants.iter().enumerate().skip(1) {
        let fields = &layout.backward[i];
        let undo = &steps[i - 1];
        let path = &undo.path;
        let args = reusable_args(&undo.call.args, &known);
        let output = &undo.binding;
        let index = (i - 1) as u32;
        let span = undo.call.span();
        let comp_call = quote_spanned! {span=>
            || <#path>::__sagaflow_compensate(#args, &#output)
        };
        let comp_call = if args.is_empty() {
            quote_spanned!(span=> || <#path>::__sagaflow_compensate(&#output))
        } else {
            comp_call
        };
        let then = if i == 1 {
            quote!(return ::core::result::Result::Err(__sagaflow_run.failed(__sagaflow_failure).await);)
        } else {
            let prev = &backward_variants[i - 1];
            let prev_fields = &layout.backward[i - 1];
            quote!(__SagaflowState::#prev { #(#prev_fields,)* __sagaflow_failure })
        };
        arms.push(quote! {
            __SagaflowState::#v { #(#fields,)* __sagaflow_failure } => {
                __sagaflow_run.compensate(<#path as ::sagaflow::Step>::__SAGAFLOW_MARKER, #index, #comp_call).await;
                #then
            }
        });
    }

    let param_names: Vec<&Ident> = params.iter().map(|p| &p.name).collect();
    let param_state_tys: Vec<&Type> = params.iter().map(|p| &p.state_ty).collect();
    let fn_params: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let (name, ty) = (&p.name, &p.ty);
            quote!(#name: #ty)
        })
        .collect();
    let step_paths: Vec<&syn::Path> = steps.iter().map(|s| &s.path).collect();
    let marker_field = if lifetimes.is_empty() {
        quote!()
    } else {
        quote!(__sagaflow_marker: #marker_ty,)
    };
    let marker_init = if lifetimes.is_empty() {
        quote!()
    } else {
        quote!(__sagaflow_marker: ::core::marker::PhantomData,)
    };

    let pivot_checks = pivot_checks(steps);
    let fn_generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let fn_doc = saga_doc(model);
    let type_doc = format!(
        "The saga [`{saga_name}`] as a value, generated by `#[saga]`: build it with \
         [`new`]({type_ident}::new), then run it with a [`Runner`](::sagaflow::Runner) \
         (hooks, report) or await [`{saga_name}`] directly."
    );
    let asyncness = &sig.asyncness;
    let journal = quote!(__SagaflowJournal);
    let mut keep_bounds = Vec::new();
    let mut encode_inputs = Vec::new();
    let mut rebuild_fields = Vec::new();
    for p in params {
        let (name, ty) = (&p.name, &p.state_ty);
        let key = name.to_string();
        match ty {
            Type::Reference(r) => {
                let referent = &r.elem;
                keep_bounds.push(
                    quote_spanned!(p.ty.span()=> #journal: ::sagaflow::__private::Share<#referent>),
                );
                rebuild_fields.push(quote! {
                    #name: <#journal as ::sagaflow::__private::Share<#referent>>::get(__sagaflow_resources)
                        .map_err(|e| ::std::string::ToString::to_string(&e))?
                });
            }
            _ => {
                keep_bounds
                    .push(quote_spanned!(p.ty.span()=> #journal: ::sagaflow::__private::Keep<#ty>));
                encode_inputs
                    .push(quote!(__sagaflow_input.put::<#journal, _>(#key, &self.#name)?;));
                rebuild_fields.push(quote!(#name: __sagaflow_input.take::<#journal, _>(#key)?));
            }
        }
    }
    for step in steps {
        let path = &step.path;
        keep_bounds.push(quote_spanned!(path.span()=> #journal: ::sagaflow::__private::Keep<<#path as ::sagaflow::Step>::Output>));
    }
    keep_bounds
        .push(quote_spanned!(output_ty.span()=> #journal: ::sagaflow::__private::Keep<#output_ty>));
    // What the durable impl's `Send` future holds, held by reference too:
    // asked as bounds of that impl rather than checked where it is written, so
    // that a saga over a `!Sync` resource (a `Cell` counter) or `!Send` data
    // still compiles and runs in memory; only handing it to a durable executor
    // or the test kit fails, naming the type. The `for<'_>` keeps each bound
    // from being a trivial one, which stable Rust would check at once.
    let send_bounds = durable_send_bounds(model);
    let with_type = if lifetimes.is_empty() {
        quote!(#type_ident)
    } else {
        let same = lifetimes.iter().map(|_| quote!('__sagaflow_a));
        quote!(#type_ident<#(#same),*>)
    };
    let graph_doc = graph_doc_call(model);

    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #fn_doc]
        #[cfg_attr(doc, doc = #graph_doc)]
        #vis #asyncness fn #fn_ident #fn_generics (#(#fn_params),*)
            -> ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>
        #where_clause
        {
            ::sagaflow::__private::run_in_memory(#type_ident::new(#(#param_names),*)).await
        }

        #[doc = #type_doc]
        #[cfg_attr(doc, doc = #graph_doc)]
        #vis struct #type_ident #generics {
            #(#param_names: #param_state_tys,)*
            #marker_field
        }

        #[automatically_derived]
        #[allow(clippy::too_many_arguments, clippy::new_without_default)]
        impl #generics #type_ident #generics {
            /// The saga with its inputs, ready to run.
            #vis fn new(#(#param_names: #param_state_tys),*) -> Self {
                Self { #(#param_names,)* #marker_init }
            }

            /// The saga's steps, their kinds and compensations; draws itself with
            /// `to_mermaid()`, `to_dot()` and `to_svg()`.
            #vis fn graph() -> ::sagaflow::SagaGraph {
                <Self as ::sagaflow::Saga>::graph()
            }
        }

        const _: () = {
            #[allow(non_camel_case_types, clippy::large_enum_variant, clippy::enum_variant_names)]
            enum __SagaflowState #generics {
                #(#variants,)*
                #marker_variant
            }

            #[automatically_derived]
            impl #generics ::sagaflow::Saga for #type_ident #generics {
                type Output = #output_ty;
                type Error = #error_ty;
                const NAME: &'static str = #saga_name;
                const STEPS: &'static [::sagaflow::StepInfo] =
                    &[#(<#step_paths as ::sagaflow::Step>::INFO),*];

                fn __sagaflow_drive<__SagaflowHooks: ::sagaflow::Hooks>(
                    self,
                    __sagaflow_run: &mut ::sagaflow::__private::Run<'_, __SagaflowHooks>,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>,
                > {
                    Self::__sagaflow_body::<__SagaflowHooks, ::sagaflow::__private::NoJournal>(self, __sagaflow_run)
                }
            }

            // The state machine, once: in memory it runs with `NoJournal`, which
            // keeps and records nothing; a durable executor runs it with a journal
            // that persists each transition, and only then do the serde bounds apply.
            #[automatically_derived]
            // The `for<'__sagaflow_x>` of the `Send` bounds binds nothing on purpose.
            #[allow(unused_lifetimes, single_use_lifetimes)]
            impl <#(#lifetimes,)* __SagaflowJournal> ::sagaflow::durable::DurableSaga<__SagaflowJournal> for #type_ident #generics
            where
                __SagaflowJournal: ::sagaflow::__private::Journal,
                #(#keep_bounds,)*
                #(#send_bounds,)*
            {
                type With<'__sagaflow_a> = #with_type;

                fn __sagaflow_encode_input(&self) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    #[allow(unused_mut)]
                    let mut __sagaflow_input = ::sagaflow::__private::InputMap::new();
                    #(#encode_inputs)*
                    __sagaflow_input.finish()
                }

                fn __sagaflow_rebuild<'__sagaflow_a>(
                    __sagaflow_resources: &'__sagaflow_a ::sagaflow::durable::Resources,
                    __sagaflow_stored: &[u8],
                ) -> ::core::result::Result<Self::With<'__sagaflow_a>, ::std::string::String> {
                    #[allow(unused_mut)]
                    let mut __sagaflow_input = ::sagaflow::__private::InputMap::parse(__sagaflow_stored)?;
                    ::core::result::Result::Ok(#type_ident {
                        #(#rebuild_fields,)*
                        #marker_init
                    })
                }

                // `Send`, so that a durable executor's recovery and handles can
                // be spawned: a durable saga's parts are `Send` anyway (its
                // resources are `Sync`, its data is persisted).
                fn __sagaflow_drive_with<__SagaflowHooks: ::sagaflow::Hooks + ::core::marker::Sync>(
                    self,
                    __sagaflow_run: &mut ::sagaflow::__private::Run<'_, __SagaflowHooks, __SagaflowJournal>,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>,
                > + ::core::marker::Send {
                    Self::__sagaflow_body::<__SagaflowHooks, __SagaflowJournal>(self, __sagaflow_run)
                }
            }

            // The state machine, once, for every journal; in memory its future
            // need not be `Send`.
            #[automatically_derived]
            impl #generics #type_ident #generics {
                // `unused_variables`: as in the trait impl this body used to be
                // in, where rustc does not report them.
                #[allow(clippy::redundant_closure, clippy::redundant_closure_call, clippy::needless_borrow, clippy::let_unit_value, unreachable_code, unused_braces, unused_variables)]
                async fn __sagaflow_body<__SagaflowHooks: ::sagaflow::Hooks, __SagaflowJournal>(
                    self,
                    __sagaflow_run: &mut ::sagaflow::__private::Run<'_, __SagaflowHooks, __SagaflowJournal>,
                ) -> ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>
                where
                    __SagaflowJournal: ::sagaflow::__private::Journal,
                    #(#keep_bounds,)*
                {
                    // Everything forward lives inside the block, so that a failing
                    // step's `break` drops what the compensations do not read
                    // before they run.
                    let mut __sagaflow_state: __SagaflowState = '__sagaflow_forward: {
                        let Self { #(#param_names,)* .. } = self;
                        #(#forward_code)*
                    };
                    loop {
                        __sagaflow_state = match __sagaflow_state {
                            #(#arms)*
                            #marker_arm
                        };
                    }
                }
            }
        };

        #pivot_checks
    }
}

/// `for<'__sagaflow_x> T: Send + Sync` (as `Shareable` or `ThreadSafe`, for
/// their messages) for every type a durable saga's future holds or lends: each
/// resource's referent, owned input, step output and error, typed local (its
/// referent, `Sync`, if it is a reference), and the saga's output and error.
fn durable_send_bounds(model: &Model) -> Vec<TokenStream> {
    let mut types: Vec<TokenStream> = Vec::new();
    let mut resources: Vec<TokenStream> = Vec::new();
    for p in &model.params {
        match &p.state_ty {
            Type::Reference(r) => {
                let referent = &r.elem;
                resources.push(quote_spanned!(p.ty.span()=> for<'__sagaflow_x> #referent: ::sagaflow::__private::Shareable));
            }
            ty => types.push(quote_spanned!(p.ty.span()=> #ty)),
        }
    }
    for step in &model.steps {
        let path = &step.path;
        types.push(quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::Output));
        types.push(quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::Error));
    }
    let (output_ty, error_ty) = (&model.output_ty, &model.error_ty);
    types.push(quote!(#output_ty));
    types.push(quote!(#error_ty));
    let mut bounds = resources;
    bounds.extend(
        types
            .into_iter()
            .map(|ty| quote!(for<'__sagaflow_x> #ty: ::sagaflow::__private::ThreadSafe)),
    );
    for local in model.locals.iter().flatten() {
        // A reference is `Send + Sync` when its referent is `Sync`: bound the
        // referent, which has no lifetime of the body's. A bound on the
        // reference itself would be chosen over the built-in rule when rustc
        // checks the future, and its lifetime would not match the body's.
        let mut ty = &local.ty;
        let mut reference = false;
        while let Type::Reference(r) = ty {
            (ty, reference) = (&r.elem, true);
        }
        let mut ty = ty.clone();
        AnyLifetime.visit_type_mut(&mut ty);
        let span = local.ty.span();
        bounds.push(if reference {
            quote_spanned!(span=> for<'__sagaflow_x> #ty: ::core::marker::Sync)
        } else {
            quote_spanned!(span=> for<'__sagaflow_x> #ty: ::sagaflow::__private::ThreadSafe)
        });
    }
    bounds
}

fn all_names(model: &Model) -> HashSet<String> {
    let mut names: HashSet<String> = model.params.iter().map(|p| p.name.to_string()).collect();
    names.extend(model.locals.iter().flatten().map(|l| l.name.to_string()));
    names.extend(model.steps.iter().map(|s| s.binding.to_string()));
    names
}

/// A step argument that is a bare saga name is read through `reuse`, so that moving
/// an owned value says why it cannot be moved, at the argument.
fn reusable_args(
    args: &syn::punctuated::Punctuated<Expr, Token![,]>,
    known: &HashSet<String>,
) -> TokenStream {
    let args = args.iter().map(|arg| match arg {
        Expr::Path(p)
            if p.qself.is_none()
                && p.path
                    .get_ident()
                    .is_some_and(|i| known.contains(&i.to_string())) =>
        {
            let span = arg.span();
            quote_spanned!(span=> ::sagaflow::__private::reuse(&#arg))
        }
        other => quote!(#other),
    });
    quote!(#(#args),*)
}

fn reusable_call(call: &syn::ExprCall, known: &HashSet<String>) -> TokenStream {
    let func = &call.func;
    let args = reusable_args(&call.args, known);
    // The user's own parentheses, so that rustc's help for a wrong argument count
    // edits the call as written.
    let mut tokens = func.to_token_stream();
    call.paren_token
        .surround(&mut tokens, |inner| inner.extend(args));
    tokens
}

/// The rustdoc "Saga graph" section: a chain of the steps' own callback macros
/// that ends in a string literal (see `graph_doc.rs` for why it takes a chain).
/// Expanded only under rustdoc (`cfg(doc)`): ordinary builds pay nothing for it,
/// and a call to a non-step is reported once, not again as a missing macro.
fn graph_doc_call(model: &Model) -> TokenStream {
    let name = model.sig.ident.to_string();
    let mut paths = model.steps.iter().map(|s| &s.path);
    let Some(first) = paths.next() else {
        return quote!("");
    };
    quote!(#first!(@sagaflow_graph [ #({#paths})* ] [ #name ]))
}

/// Const checks that put "after the pivot" mistakes at the offending call.
fn pivot_checks(steps: &[StepCall]) -> TokenStream {
    let mut out = TokenStream::new();
    for (i, step) in steps.iter().enumerate().skip(1) {
        let path = &step.path;
        let span = path.span();
        let name = quote!(#path).to_string().replace(' ', "");
        let earlier = steps[..i].iter().map(|s| {
            let p = &s.path;
            quote_spanned!(span=> ::core::matches!(<#p as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Pivot))
        });
        let second = format!(
            "`{name}` is a second pivot, but a saga has at most one point of no return: make one of them `compensate = <fn>` or `retriable`"
        );
        let after = format!(
            "`{name}` runs after the saga's pivot, so it could never be undone: make it `#[step(retriable)]`, or move it before the pivot"
        );
        let check = format_ident!(
            "__sagaflow_pivot_order_of_{}",
            step.path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default(),
            span = span
        );
        out.extend(quote_spanned! {span=>
            const _: () = {
                #[allow(non_upper_case_globals, clippy::nonminimal_bool)]
                const #check: () = if #(#earlier)||* {
                    if ::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Pivot) {
                        ::core::panic!(#second);
                    }
                    if !::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Retriable) {
                        ::core::panic!(#after);
                    }
                };
            };
        });
    }
    out
}

fn saga_doc(model: &Model) -> String {
    format!(
        "# Saga\n\nA saga generated by `#[saga]`: awaiting it runs the steps in order and, \
         when one fails for good, undoes the completed ones in reverse order, then returns \
         [`SagaError`](::sagaflow::SagaError). [`{ty}`] is the same saga as a value, and \
         [`{ty}::graph()`]({ty}::graph) describes it.",
        ty = model.type_ident,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(item: &str) -> String {
        expand(TokenStream::new(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn camel_case_names() {
        assert_eq!(upper_camel("book_trip"), "BookTrip");
        assert_eq!(upper_camel("r#type"), "Type");
        assert_eq!(upper_camel("a__b_"), "AB");
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
        let model = Model::build(&cx, &item, None).unwrap();
        cx.check().unwrap();
        let l = layout(&model);
        let names = |v: &Vec<Ident>| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&l.forward[0]), ["r", "t"]);
        assert_eq!(names(&l.forward[1]), ["r", "t", "a", "k"]);
        assert_eq!(names(&l.forward[3]), ["r", "t", "a", "k", "b", "c"]);
        assert_eq!(names(&l.backward[1]), ["r", "t", "a"]);
        assert_eq!(names(&l.backward[2]), ["r", "t", "a", "k", "b"]);
    }
}
