//! Parse, body: the saga's statements read into a sequence of nodes.
//!
//! ```text
//! let flight = book_flight(airline, &trip).await?;
//! let total: u64 = flight.price + 10;
//! charge(airline, total).await?;
//! Ok(Itinerary { flight })
//! ```
//! becomes
//! ```text
//! [Step(flight = book_flight(airline, &trip)), Local(total: u64 = flight.price + 10),
//!  Step(__sagaflow_output1 = charge(airline, total))]  final: Itinerary { flight }
//! ```

use proc_macro2::TokenTree;
use quote::{ToTokens, format_ident, quote};
use syn::{Expr, Pat, Stmt, Token};

use super::ast::{Local, MethodCall, Node, StepCall};
pub(super) use super::exprs::no_borrowed_temporary;
use super::exprs::{check_plain_expr, contains_await, is_ok_call};
use super::group;
use super::scope::Scope;
use super::signature::name_elided;
use super::unsupported;
use crate::ctxt::Ctxt;

pub(super) const BODY_HELP: &str = "a saga body holds only step calls (`let x = step(args).await?;` or `step(args).await?;`), typed locals (`let x: T = expr;`), branches (`if`/`match` over saga data), messages (`sagaflow::send!(destination, &message);`) and a final `Ok(..)`";

/// A saga body as read, with or without its final `Ok(..)`.
pub(super) struct Body {
    pub(super) nodes: Vec<Node>,
    /// The `sagaflow::send!` statements, in order.
    pub(super) sends: Vec<super::send::SendStmt>,
    pub(super) final_expr: Option<Expr>,
    pub(super) needs_elided: bool,
    /// False if a mistake was reported.
    pub(super) ok: bool,
}

/// One statement, read.
// Lives for one statement, moved once into the body: boxing would only add an
// allocation per statement.
#[allow(clippy::large_enum_variant)]
pub(super) enum Read {
    Node(Node),
    Final(Expr),
    Send(super::send::SendStmt),
    /// A mistake, reported.
    Skip,
}

/// Reads every statement of `block`, reporting each mistake, and binds the names
/// it declares in `scope`.
pub(super) fn read(cx: &Ctxt, block: &syn::Block, scope: &mut Scope) -> Body {
    read_stmts(cx, &block.stmts, scope, &mut 0, Place::Top)
}

/// Where a sequence of statements stands: the saga's own body, or an arm of a
/// branch (whose last expression the branch reads itself).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Top,
    Arm,
}

/// Reads `stmts` as [`read`] does; `steps` counts the steps before them, depth
/// first, and goes on counting.
pub(super) fn read_stmts(
    cx: &Ctxt,
    stmts: &[Stmt],
    scope: &mut Scope,
    steps: &mut usize,
    place: Place,
) -> Body {
    let mut body = Body {
        nodes: Vec::new(),
        sends: Vec::new(),
        final_expr: None,
        needs_elided: false,
        ok: true,
    };
    let count = stmts.len();
    for (i, stmt) in stmts.iter().enumerate() {
        let last = i + 1 == count && place == Place::Top;
        if body.final_expr.is_some() {
            cx.error_spanned_by(stmt, "nothing may follow the final `Ok(..)` of a saga");
            body.ok = false;
            continue;
        }
        if let Some(found) = super::branch::read_stmt(cx, stmt, scope, steps) {
            match found {
                Some(branch) => {
                    body.needs_elided |= branch.needs_elided;
                    body.nodes.push(Node::Branch(branch.branch));
                }
                None => body.ok = false,
            }
            continue;
        }
        match read_stmt(cx, stmt, last, *steps, scope) {
            Read::Node(Node::Step(step)) => {
                if step.named_by_user {
                    scope.bind(cx, &step.binding);
                }
                scope.hold(&step.binding);
                *steps += 1;
                body.nodes.push(Node::Step(step));
            }
            Read::Node(Node::Group(g)) => {
                for member in &g.members {
                    if member.named_by_user {
                        scope.bind(cx, &member.binding);
                    }
                    scope.hold(&member.binding);
                }
                *steps += g.members.len();
                body.nodes.push(Node::Group(g));
            }
            Read::Node(Node::Local(mut local)) => {
                scope.bind(cx, &local.name);
                if !scope.check_local_borrow(cx, &local) {
                    body.ok = false;
                    continue;
                }
                body.needs_elided |= name_elided(&mut local.ty, &scope.elided);
                scope.hold(&local.name);
                body.nodes.push(Node::Local(local));
            }
            // Read by `branch::read_stmt` above.
            Read::Node(Node::Branch(_)) => {}
            Read::Final(expr) if place == Place::Top => body.final_expr = Some(expr),
            Read::Send(send) if place == Place::Top => body.sends.push(send),
            Read::Final(_) => {
                cx.error_spanned_by(
                    stmt,
                    "an arm cannot end the saga: the saga ends once, after its branches, with `Ok(..)`; give the `if` or `match` a `let` and end the saga with `Ok(..)` after it",
                );
                body.ok = false;
            }
            Read::Send(_) => {
                cx.error_spanned_by(
                    stmt,
                    "`sagaflow::send!` inside an arm is not supported: a body's messages are sent at its commit whichever arm ran; send from a step of the arm (`StepContext::current().send(..)`), whose messages are committed with its outcome",
                );
                body.ok = false;
            }
            Read::Skip => body.ok = false,
        }
    }
    body
}

/// One statement; `index` is the number of steps before it.
pub(super) fn read_stmt(cx: &Ctxt, stmt: &Stmt, last: bool, index: usize, scope: &Scope) -> Read {
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
        return Read::Skip;
    }
    if unsupported::report(cx, stmt) {
        return Read::Skip;
    }
    match stmt {
        Stmt::Local(local) => read_let(cx, local, index, scope),
        Stmt::Expr(expr, Some(semi)) if last && is_ok_call(expr) => {
            cx.error_spanned_by(
                semi,
                "end the saga with `Ok(..)` itself, without `;`: it is the value the saga returns",
            );
            Read::Skip
        }
        Stmt::Expr(Expr::Return(r), Some(_))
            if last && r.expr.as_deref().is_some_and(is_ok_call) =>
        {
            cx.error_spanned_by(
                r.return_token,
                "end the saga with `Ok(..)` itself, without `return` and without `;`",
            );
            Read::Skip
        }
        Stmt::Expr(Expr::Return(r), Some(_)) => {
            cx.error_spanned_by(
                r.return_token,
                "a saga cannot `return` early: the run would end without being recorded or compensated; to stop on a condition, make the check a `#[step(read_only)]` that returns `Err(..)`, which compensates the steps before it",
            );
            Read::Skip
        }
        Stmt::Expr(expr, Some(_))
            if let Some(g) = group::read(cx, expr, index, None, None, scope) =>
        {
            g.map_or(Read::Skip, |g| Read::Node(Node::Group(g)))
        }
        Stmt::Macro(m) if group::is_join(&m.mac.path) => {
            group::missing_question(cx, &m.mac);
            Read::Skip
        }
        Stmt::Expr(expr, Some(_)) => match step_call(cx, expr, scope, None) {
            Some(Some(step)) => Read::Node(Node::Step(StepCall {
                named_by_user: false,
                binding: format_ident!("__sagaflow_output{}", index),
                ..step
            })),
            Some(None) => Read::Skip,
            None => {
                cx.error_spanned_by(expr, BODY_HELP);
                Read::Skip
            }
        },
        Stmt::Expr(expr, None) => read_tail(cx, expr, last),
        Stmt::Item(item) => {
            cx.error_spanned_by(
                item,
                "items cannot be declared inside a saga body: move it out of the function",
            );
            Read::Skip
        }
        Stmt::Macro(m) if super::send::is_send(&m.mac) => match super::send::read(cx, &m.mac) {
            Some(send) => Read::Send(send),
            None => Read::Skip,
        },
        Stmt::Macro(m) => {
            cx.error_spanned_by(m, BODY_HELP);
            Read::Skip
        }
    }
}

/// `let x = step(..).await?;`, `let _ = ..` or `let x: T = expr;`.
fn read_let(cx: &Ctxt, local: &syn::Local, index: usize, scope: &Scope) -> Read {
    let Some(init) = &local.init else {
        cx.error_spanned_by(local, "a saga local needs a value: `let x: T = expr;`");
        return Read::Skip;
    };
    if let Some((_, diverge)) = &init.diverge {
        cx.error_spanned_by(
            diverge,
            "`let .. else` is not part of a saga body; ".to_owned() + BODY_HELP,
        );
        return Read::Skip;
    }
    if let Some(found) = read_let_group(cx, local, &init.expr, index, scope) {
        return found;
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
                return Read::Skip;
            }
            Some(pi.ident.clone())
        }
        Pat::Wild(_) => None,
        other => {
            cx.error_spanned_by(
                other,
                "bind a step's output or a local to one name, as in `let booking = ..`; read its fields in later expressions",
            );
            return Read::Skip;
        }
    };
    match step_call(cx, &init.expr, scope, ty.as_ref()) {
        Some(Some(step)) => {
            if step.inline.is_some() && ty.is_none() && binding.is_some() {
                cx.error_spanned_by(
                    &local.pat,
                    "an inline step's output needs its type written on the `let`, as in `let hold: Hold = sagaflow::inline!(..)?;`: it becomes part of the saga's state, and an `async` block's type cannot be named",
                );
                return Read::Skip;
            }
            Read::Node(Node::Step(StepCall {
                named_by_user: binding.is_some(),
                binding: binding.unwrap_or_else(|| format_ident!("__sagaflow_output{}", index)),
                binding_ty: if step.inline.is_some() { None } else { ty },
                ..step
            }))
        }
        Some(None) => Read::Skip,
        None => {
            if let Some(span) = contains_await(&init.expr) {
                cx.error_at(
                    span,
                    "a step call is a whole statement, as in `let flight = book_flight(args).await?;`: read its output's fields in a later typed local, and leave its failure to the saga (no `match` or `unwrap`): it ends the saga and compensates the steps before it",
                );
                return Read::Skip;
            }
            if !check_plain_expr(cx, &init.expr) {
                return Read::Skip;
            }
            match (binding, ty) {
                (Some(name), Some(ty)) => Read::Node(Node::Local(Local {
                    name,
                    ty,
                    expr: (*init.expr).clone(),
                })),
                (Some(name), None) => {
                    cx.error_spanned_by(
                        &name,
                        format!(
                            "a saga local needs its type written out, as in `let {name}: u64 = ..;`: it becomes part of the saga's state (or, if this is meant to be a step call, write `step(args).await?`)"
                        ),
                    );
                    Read::Skip
                }
                (None, _) => {
                    cx.error_spanned_by(
                        &local.pat,
                        "`let _ = ..` in a saga is only for step calls whose output is not read: `let _ = step(args).await?;`",
                    );
                    Read::Skip
                }
            }
        }
    }
}

/// `let (a, b) = sagaflow::join!(..)?;`, if the value is a group.
fn read_let_group(
    cx: &Ctxt,
    local: &syn::Local,
    expr: &Expr,
    index: usize,
    scope: &Scope,
) -> Option<Read> {
    if !group::is_group(expr) {
        return None;
    }
    let Ok(names) = group::pattern_names(cx, &local.pat) else {
        return Some(Read::Skip);
    };
    let read = group::read(cx, expr, index, names, Some(&local.pat), scope);
    Some(
        read.flatten()
            .map_or(Read::Skip, |g| Read::Node(Node::Group(g))),
    )
}

/// An expression without `;`: the final `Ok(..)`, or a mistake.
fn read_tail(cx: &Ctxt, expr: &Expr, last: bool) -> Read {
    if is_ok_call(expr)
        && let Expr::Call(call) = expr
    {
        if let Some(span) = contains_await(&call.args[0]) {
            cx.error_at(
                span,
                "the final `Ok(..)` cannot await; call steps before it",
            );
            return Read::Skip;
        }
        if !check_plain_expr(cx, &call.args[0]) {
            return Read::Skip;
        }
        return Read::Final(call.args[0].clone());
    }
    if last
        && let Expr::Return(r) = expr
        && r.expr.as_deref().is_some_and(is_ok_call)
    {
        cx.error_spanned_by(
            r.return_token,
            "end the saga with `Ok(..)` itself, without `return`",
        );
        return Read::Skip;
    }
    if last {
        cx.error_spanned_by(
            expr,
            "a saga body ends with `Ok(value)`, the value the saga returns when every step succeeded",
        );
    } else {
        cx.error_spanned_by(expr, BODY_HELP);
    }
    Read::Skip
}

/// Reads `EXPR.await?` as a step call, reporting what is missing when it is almost
/// one: `None` if it is not a step call at all, `Some(None)` if it was reported.
pub(super) fn step_call(
    cx: &Ctxt,
    expr: &Expr,
    scope: &Scope,
    ty: Option<&syn::Type>,
) -> Option<Option<StepCall>> {
    match expr {
        Expr::Try(t) => match &*t.expr {
            Expr::Await(a) => Some(awaited_call(cx, &a.base, t.question_token, scope)),
            Expr::Macro(m) if super::inline::is_inline(m) => Some(super::inline::read(
                cx,
                m,
                ty,
                t.question_token,
                &scope.fn_ident,
                scope.names(),
            )),
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

/// What `.await?` is applied to, read as a call to a step by its path; `None` if
/// it is not one (reported).
pub(super) fn awaited_call(
    cx: &Ctxt,
    base: &Expr,
    question: Token![?],
    scope: &Scope,
) -> Option<StepCall> {
    match base {
        Expr::Call(call) => match &*call.func {
            Expr::Path(p) if p.qself.is_none() => {
                if let Some(seg) = p.path.segments.iter().find(|s| !s.arguments.is_none()) {
                    cx.error_spanned_by(
                        &seg.arguments,
                        "steps are not generic: call the step without `::<..>`",
                    );
                    return None;
                }
                if !no_borrowed_temporary(cx, &call.args) {
                    return None;
                }
                Some(called(p.path.clone(), call.clone(), question, None))
            }
            other => {
                cx.error_spanned_by(
                    other,
                    "a saga can only await a call to a `#[step]` function by its name, as in `book_flight(&trip).await?`",
                );
                None
            }
        },
        Expr::MethodCall(m) => {
            let (path, call, method) = super::method::step_call(cx, m, scope)?;
            Some(called(path, call, question, Some(Box::new(method))))
        }
        other => {
            cx.error_spanned_by(
                other,
                "a saga can only await a call to a `#[step]` function, as in `book_flight(&trip).await?`",
            );
            None
        }
    }
}

/// A step call as read, before the statement around it names its output.
fn called(
    path: syn::Path,
    call: syn::ExprCall,
    question: Token![?],
    method: Option<Box<MethodCall>>,
) -> StepCall {
    StepCall {
        binding: format_ident!("__sagaflow_unnamed"),
        named_by_user: false,
        binding_ty: None,
        path,
        call,
        question,
        method,
        inline: None,
    }
}
