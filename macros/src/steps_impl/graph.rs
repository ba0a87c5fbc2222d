//! The step method's names, and the graph callback through which rustdoc's
//! picture of a saga finds the steps of a type's `#[sagaflow::steps]` block.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Type;

use super::type_name;

/// `Bank::debit`: the step's name in the journal, the graph and the report.
pub(super) fn step_name(self_ty: &Type, method: &syn::Ident) -> String {
    format!(
        "{}::{}",
        type_name(self_ty),
        method.to_string().trim_start_matches("r#")
    )
}

/// The method's name without `r#`, as the graph callback's selector.
pub(super) fn method_ident(method: &syn::Ident) -> syn::Ident {
    syn::Ident::new(method.to_string().trim_start_matches("r#"), method.span())
}

// The rustdoc picture of a saga that calls `bank.debit(..)`:
//     #[sagaflow::steps] impl Bank { #[step(..)] async fn debit(..) .. }
// also defines, in the macro namespace under the type's name (so that it goes
// wherever `use` takes the type), a graph callback whose rules are selected by
// the method's name:
//     macro_rules! __sagaflow_steps_Bank_<salt> { (@sagaflow_graph debit [..] [..]) => { .. } }
//     pub use __sagaflow_steps_Bank_<salt> as Bank;
// Hence one `#[sagaflow::steps]` block per type in a module, declared in the
// module of the type.

pub(super) fn graph_callback(self_ty: &Type, rules: &[TokenStream], salt: u64) -> TokenStream {
    let Type::Path(p) = self_ty else {
        return TokenStream::new();
    };
    let Some(last) = p.path.segments.last() else {
        return TokenStream::new();
    };
    if rules.is_empty() {
        return TokenStream::new();
    }
    let ident = &last.ident;
    let unique = format_ident!("__sagaflow_steps_{}_{:016x}", ident, salt);
    quote! {
        #[doc(hidden)]
        #[macro_export]
        #[allow(non_local_definitions)]
        macro_rules! #unique {
            #(#rules)*
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub use #unique as #ident;
    }
}
