//! Polling a group's members together: the future the generated code awaits
//! for a `sagaflow::join!`, over the pinned members.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::Joinable;

/// The members of a group, pinned, polled together until every one has
/// finished: every member at every wake (`&`, not `&&`), as a member that
/// fails for good wakes the task so that a sibling in its backoff sees it.
///
/// A type of its own rather than a `poll_fn` closure, so that its poll can
/// be marked to be inlined into the saga's: rustc left the closure as a call
/// per group, and inlining it took about 23 instructions off each group of
/// two (callgrind, the `overhead` bench's `groups` run).
#[doc(hidden)]
pub struct JoinAll<T>(pub T);

macro_rules! join_all {
    ($($member:ident),+) => {
        impl<'p, $($member: Joinable),+> Future for JoinAll<($(Pin<&'p mut $member>,)+)> {
            type Output = ();

            #[inline(always)]
            #[allow(non_snake_case)]
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                let ($($member,)+) = &mut self.get_mut().0;
                let mut done = true;
                $(done &= $member.as_mut().poll_done(cx);)+
                if done { Poll::Ready(()) } else { Poll::Pending }
            }
        }
    };
}

join_all!(A, B);
join_all!(A, B, C);
join_all!(A, B, C, D);
join_all!(A, B, C, D, E);
join_all!(A, B, C, D, E, F);
join_all!(A, B, C, D, E, F, G);
join_all!(A, B, C, D, E, F, G, H);
join_all!(A, B, C, D, E, F, G, H, I);
join_all!(A, B, C, D, E, F, G, H, I, J);
join_all!(A, B, C, D, E, F, G, H, I, J, K);
join_all!(A, B, C, D, E, F, G, H, I, J, K, L);
