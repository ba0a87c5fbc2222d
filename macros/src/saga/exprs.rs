//! What the parser asks of an expression: is it a place, `Ok(..)`, plain
//! computation, does it await.

use proc_macro2::Span;
use syn::visit::Visit;
use syn::{Expr, Token};

use crate::ctxt::Ctxt;

/// Whether `&expr` borrows a place that outlives the step call (a name, a field or
/// an element of one, a dereference, a literal), rather than a temporary.
pub(super) fn is_place(expr: &Expr) -> bool {
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
pub(super) fn is_ok_call(expr: &Expr) -> bool {
    matches!(expr, Expr::Call(call)
        if matches!(&*call.func, Expr::Path(p) if p.qself.is_none() && p.path.is_ident("Ok"))
            && call.args.len() == 1)
}

/// A local's value or the final `Ok(..)`'s is plain computation: it cannot leave
/// the saga early, by `return` or by `?`, which would end the run without
/// recording it or compensating its steps. Closures and async blocks inside it
/// are their own functions, so their `return`s and `?`s are theirs.
pub(super) fn check_plain_expr(cx: &Ctxt, expr: &Expr) -> bool {
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
pub(super) fn contains_await(expr: &Expr) -> Option<Span> {
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

/// Whether no step argument borrows a temporary (each one is reported).
pub(super) fn no_borrowed_temporary(
    cx: &Ctxt,
    args: &syn::punctuated::Punctuated<Expr, Token![,]>,
) -> bool {
    let mut ok = true;
    for arg in args {
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
    ok
}
