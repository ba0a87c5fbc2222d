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
    for stmt in &mut func.block.stmts {
        if let Stmt::Local(local) = stmt {
            strip_mut(&mut local.pat);
        }
    }
    if !returns_result || calls_inline(&func.block) {
        // The body's `?`s would only add errors about the return type; an
        // `inline!` outside the saga's reading is an error of its own.
        func.block = syn::parse_quote!({ ::core::unreachable!("this saga did not compile") });
        func.attrs
            .push(syn::parse_quote!(#[allow(unused_variables)]));
    }
    quote!(#errors #func)
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
