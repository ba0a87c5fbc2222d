//! Check, conditions: what a branch may read to choose its arm.
//!
//! ```text
//! if quote_ground(carrier, &order).await?.cheap { .. }    // error: a step in a condition
//! match carrier.region() { .. }                           // error: a resource in a condition
//! match order.region { Region::Eu => .., _ => .. }        // saga data: fine
//! ```
//! Recovery takes the arm the journal recorded and never evaluates the
//! condition again, so that a condition whose answer would change (a
//! resource's state, the clock, a step run again) cannot send a recovered saga
//! down the other arm; the same rule keeps a first run and its recovery
//! reading the same data: inputs, step outputs, typed locals.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Expr, Pat};

use super::exprs::{check_plain_expr, contains_await};
use super::scope::Scope;
use crate::ctxt::Ctxt;

const WHY: &str = "recovery takes the arm the journal recorded without evaluating the condition again, so a condition reads only saga data (inputs, step outputs, typed locals)";

/// Whether `cond` reads only saga data (each mistake reported).
pub(super) fn check_condition(cx: &Ctxt, cond: &Expr, scope: &Scope) -> bool {
    if let Some(span) = contains_await(cond) {
        cx.error_at(
            span,
            format!(
                "a branch's condition cannot call a step or await: {WHY}; call the step before the branch (`let quote = quote_ground(..).await?;`) and branch on its output"
            ),
        );
        return false;
    }
    if let Some(m) = saga_macro(cond) {
        cx.error_spanned_by(
            &m.path,
            format!(
                "a branch's condition cannot run steps: {WHY}; run them before the branch and branch on their outputs"
            ),
        );
        return false;
    }
    if let Expr::Let(l) = cond {
        cx.error_spanned_by(
            l.let_token,
            "`if let` is not supported in a saga: recovery takes the arm the journal recorded without evaluating the condition again, so it could not bind the pattern's names again; write a `match` whose patterns bind nothing (`Region::Us { .. }`, `_`), and read the value in a typed local inside the arm",
        );
        return false;
    }
    if let Some(resource) = first_name(cond.to_token_stream(), &|s| scope.is_resource(s)) {
        cx.error_spanned_by(
            &resource,
            format!(
                "a branch's condition cannot read `{resource}`, a resource (`&T` parameter): {WHY}, and a resource's state is not recorded; read what you need with a step first (`let level = read_level({resource}, ..).await?;`, a `#[step(read_only)]`) and branch on its output"
            ),
        );
        return false;
    }
    check_plain_expr(cx, cond)
}

/// Whether a `match` arm's pattern binds no name (reported if it does):
/// recovery does not evaluate the scrutinee, so it could not bind them again.
pub(super) fn binds_nothing(cx: &Ctxt, pat: &Pat) -> bool {
    struct Finder(Option<syn::Ident>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            // `None`, `MAX`, `Region::Eu` name constants or variants: a
            // lowercase identifier, or `x @ ..`, binds.
            let lower = p
                .ident
                .to_string()
                .chars()
                .next()
                .is_some_and(|c| c.is_lowercase() || c == '_');
            if (lower || p.subpat.is_some() || p.by_ref.is_some()) && self.0.is_none() {
                self.0 = Some(p.ident.clone());
            }
            syn::visit::visit_pat_ident(self, p);
        }
    }
    let mut f = Finder(None);
    f.visit_pat(pat);
    match f.0 {
        None => true,
        Some(name) => {
            cx.error_spanned_by(
                &name,
                format!(
                    "a saga's `match` arm cannot bind `{name}`: recovery takes the arm the journal recorded without evaluating the scrutinee again, so it could not bind `{name}` again; match with patterns that bind nothing (`Region::Us(_)`, `Shipping::Express {{ .. }}`) and read the field in a typed local inside the arm"
                ),
            );
            false
        }
    }
}

/// The first `sagaflow::..!` macro in `expr`.
fn saga_macro(expr: &Expr) -> Option<syn::Macro> {
    struct Finder(Option<syn::Macro>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            if m.path
                .segments
                .first()
                .is_some_and(|s| s.ident == "sagaflow")
            {
                self.0.get_or_insert_with(|| m.clone());
            }
        }
    }
    let mut f = Finder(None);
    f.visit_expr(expr);
    f.0
}

/// The first identifier of `tokens` that `matches`, not counting field names
/// (`x.carrier` does not read `carrier`).
fn first_name(tokens: TokenStream, matches: &dyn Fn(&str) -> bool) -> Option<proc_macro2::Ident> {
    let mut dots = 0;
    for tt in tokens {
        match &tt {
            TokenTree::Group(g) => {
                if let Some(found) = first_name(g.stream(), matches) {
                    return Some(found);
                }
            }
            TokenTree::Ident(i) if dots != 1 && matches(&i.to_string()) => return Some(i.clone()),
            _ => {}
        }
        dots = match &tt {
            TokenTree::Punct(p) if p.as_char() == '.' => dots + 1,
            _ => 0,
        };
    }
    None
}
