//! Parse, what a body cannot hold (yet): branches, loops and concurrency, each
//! reported with what to write instead, before the generic "a saga body holds
//! only ..." could hide what was meant.
//!
//! ```text
//! if flight.price > 1000 { .. }          for trip in &trips { .. }
//! tokio::join!(a(..), b(..));            tokio::spawn(async { .. });
//! ```
//! become one error each, at the `if`, the `for`, the macro's or the call's path.

use syn::visit::Visit;
use syn::{Expr, Stmt};

use crate::ctxt::Ctxt;

const BRANCH: &str = "not supported yet in a saga body: its steps are one fixed sequence, so that it knows what to undo; decide inside a step (a `#[step(read_only)]` that returns the choice, then a step that acts on it), or declare one saga per case";

const LOOP: &str = "not supported in a saga body: its steps are one fixed sequence, each undone once; loop inside a step, or run one saga per item";

const CONCURRENT: &str = "a saga body runs steps concurrently only with `sagaflow::join!`, which knows which of them ran and undoes exactly those: write `let (a, b) = sagaflow::join!(step_a(..), step_b(..))?;`";

/// Reports `stmt` if it is a branch, a loop or a concurrency construct; whether
/// it did.
pub(super) fn report(cx: &Ctxt, stmt: &Stmt) -> bool {
    if let Some(found) = concurrency(stmt) {
        cx.push(found);
        return true;
    }
    let expr = match stmt {
        Stmt::Expr(expr, _) => expr,
        // `let x = if .. { a().await? } else { b().await? };`: a branch over steps.
        Stmt::Local(local) => match local.init.as_ref().map(|i| &*i.expr) {
            Some(e @ (Expr::If(_) | Expr::Match(_))) if branch_awaits(e) => e,
            _ => return false,
        },
        _ => return false,
    };
    match expr {
        Expr::If(i) => cx.error_spanned_by(i.if_token, format!("`if` is {BRANCH}")),
        Expr::Match(m) => cx.error_spanned_by(m.match_token, format!("`match` is {BRANCH}")),
        Expr::ForLoop(f) => cx.error_spanned_by(f.for_token, format!("a `for` loop is {LOOP}")),
        Expr::While(w) => cx.error_spanned_by(w.while_token, format!("a `while` loop is {LOOP}")),
        Expr::Loop(l) => cx.error_spanned_by(l.loop_token, format!("`loop` is {LOOP}")),
        _ => return false,
    }
    true
}

/// Whether an `if`'s branches or a `match`'s arms await (a step call in a
/// branch), as opposed to a `match` on an awaited value, which is reported as a
/// step call that is not a whole statement.
fn branch_awaits(expr: &Expr) -> bool {
    match expr {
        Expr::If(i) => {
            super::exprs::contains_await(&Expr::Block(syn::ExprBlock {
                attrs: Vec::new(),
                label: None,
                block: i.then_branch.clone(),
            }))
            .is_some()
                || i.else_branch
                    .as_ref()
                    .is_some_and(|(_, e)| super::exprs::contains_await(e).is_some())
        }
        Expr::Match(m) => m
            .arms
            .iter()
            .any(|arm| super::exprs::contains_await(&arm.body).is_some()),
        _ => false,
    }
}

/// The first `join!`, `try_join!`, `select!` or `spawn(..)` in a statement.
fn concurrency(stmt: &Stmt) -> Option<syn::Error> {
    struct Finder(Option<syn::Error>);
    impl Finder {
        fn found(&mut self, path: &syn::Path, what: String) {
            if self.0.is_none() {
                self.0 = Some(syn::Error::new_spanned(path, what));
            }
        }
    }
    impl<'ast> Visit<'ast> for Finder {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            let Some(last) = m.path.segments.last() else {
                return;
            };
            if !super::group::is_join(&m.path)
                && ["join", "try_join", "select", "try_select"]
                    .iter()
                    .any(|name| last.ident == name)
            {
                let name = path_text(&m.path);
                self.found(&m.path, format!("`{name}!`: {CONCURRENT}"));
            }
        }
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let Expr::Path(p) = &*call.func
                && p.path.segments.len() >= 2
                && p.path.segments.last().is_some_and(|s| {
                    ["spawn", "spawn_local", "join_all", "try_join_all"]
                        .iter()
                        .any(|name| s.ident == name)
                })
            {
                let name = path_text(&p.path);
                self.found(&p.path, format!("`{name}`: {CONCURRENT}"));
            }
            syn::visit::visit_expr_call(self, call);
        }
        // A closure or an async block is its own code, as in a local's value.
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    }
    let mut finder = Finder(None);
    finder.visit_stmt(stmt);
    finder.0
}

fn path_text(path: &syn::Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}
