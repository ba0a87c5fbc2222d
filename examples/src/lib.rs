//! Runnable sagas modelled on real uses: `travel` and `provision`.
