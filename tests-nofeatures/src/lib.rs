//! Nothing here: this package holds UI tests (`tests/ui.rs`) of memo-kit built without its
//! features, the compile errors that say which feature an option needs.
