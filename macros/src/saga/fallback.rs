//! On a mistake: the errors, and the function as written next to them.
//!
//! ```text
//! async fn book_trip(..) -> Result<T, E> { let mut x = ..; .. }
//! ```
//! becomes
//! ```text
//! compile_error!(".."); async fn book_trip(..) -> Result<T, E> { let x = ..; .. }
//! ```

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, Pat, ReturnType, Stmt};

use super::signature::result_args;

/// The errors, then the function as ordinary async Rust: emitting it keeps the
/// rest of the crate compiling, so only the saga's own errors show.
pub(super) fn function(errors: Option<syn::Error>, mut func: ItemFn) -> TokenStream {
    let errors = errors.map(|e| e.to_compile_error());
    let returns_result =
        matches!(&func.sig.output, ReturnType::Type(_, ty) if result_args(ty).is_some());
    if func.sig.asyncness.is_none() && !returns_result {
        // Likely a hand-made future (`-> impl Future<..> { async move { .. } }`):
        // left as written, since made async it would only add errors.
        return quote!(#errors #func);
    }
    func.sig.asyncness.get_or_insert_with(Default::default);
    // A `send!` outside `#[saga]`'s reading is `sagaflow::send!`'s own
    // "only in a saga body" error: not what the user did wrong here.
    func.block
        .stmts
        .retain(|stmt| !matches!(stmt, Stmt::Macro(m) if super::send::is_send(&m.mac)));
    for stmt in &mut func.block.stmts {
        if let Stmt::Local(local) = stmt {
            strip_mut(&mut local.pat);
        }
    }
    if !returns_result || has_join(&func.block) || calls_inline(&func.block) {
        // The body's `?`s would only add errors about the return type; a
        // `sagaflow::join!` or an `inline!` left as written would only say
        // that it belongs in a `#[saga]` body.
        func.block = syn::parse_quote!({ ::core::unreachable!("this saga did not compile") });
        func.attrs
            .push(syn::parse_quote!(#[allow(unused_variables)]));
    }
    quote!(#errors #func)
}

/// Whether a `sagaflow::join!` or a `sagaflow::send!` is written anywhere in `block`.
fn has_join(block: &syn::Block) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            // A `send!` in an arm too: left as written, it would only say
            // that it belongs in a `#[saga]` body.
            self.0 |= super::group::is_join(&m.path) || super::send::is_send(m);
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_block(&mut finder, block);
    finder.0
}

/// `mut x` as `x`: a saga's locals are immutable, and a `mut` already reported
/// would only add an unused-mut warning.
fn strip_mut(pat: &mut Pat) {
    match pat {
        Pat::Ident(pi) => pi.mutability = None,
        Pat::Type(pt) => strip_mut(&mut pt.pat),
        _ => {}
    }
}

/// Whether `block` calls `inline!` anywhere.
fn calls_inline(block: &syn::Block) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        let mut inline_before = false;
        for tt in tokens {
            match &tt {
                proc_macro2::TokenTree::Group(g) if walk(g.stream()) => return true,
                proc_macro2::TokenTree::Punct(p) if p.as_char() == '!' && inline_before => {
                    return true;
                }
                _ => {}
            }
            inline_before = matches!(&tt, proc_macro2::TokenTree::Ident(i) if i == "inline");
        }
        false
    }
    walk(quote!(#block))
}
