//! Tape support (see the tape issue); filled by the tape module's owner.
