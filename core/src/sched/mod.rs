//! Schedulers and their parts. So far: [`deque`], the work-stealing deque a stealing pool is
//! built on.

pub mod deque;
