//! Waiting on several tasks: `gather`, `wait`, `as_completed`, `wait_for`, `shield`. Each
//! watches its tasks through one shared [`WatchedTasks`], so a wake-up costs O(1) however many
//! tasks there are.

use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use super::executor::{cancel_point, sleep, spawn, waiting_on, Join, JoinHandle, Waiting, WatchedTasks};
use super::{AioError, AioResult};

/// `asyncio.gather(*tasks)`: every result in order; the first exception raised (in the order the
/// tasks finished) is raised at once while the others go on running. Cancelling the gather
/// cancels them all.
pub async fn gather<T>(mut handles: Vec<JoinHandle<T>>) -> AioResult<Vec<T>> {
    match all_finished(&handles, true).await? {
        Some(failed) => take(&mut handles[failed]).and(Err(AioError::Raised("a failed task returned a value".into()))),
        None => handles.iter_mut().map(take).collect(),
    }
}

/// `asyncio.gather(*tasks, return_exceptions=True)`: every outcome, in order, once all finish.
pub async fn gather_settled<T>(mut handles: Vec<JoinHandle<T>>) -> AioResult<Vec<AioResult<T>>> {
    all_finished(&handles, false).await?;
    Ok(handles.iter_mut().map(take).collect())
}

/// Waits until every task has finished — or, with `fail_fast`, until one fails (its index);
/// cancelling the wait cancels the tasks.
async fn all_finished<T>(handles: &[JoinHandle<T>], fail_fast: bool) -> AioResult<Option<usize>> {
    let progress = WatchedTasks::watch(handles, false);
    poll_fn(|cx| {
        if let Err(cancelled) = cancel_point() {
            handles.iter().for_each(|h| _ = h.cancel());
            return Poll::Ready(Err(cancelled));
        }
        if let Some(failed) = progress.first_failure().filter(|_| fail_fast) {
            return Poll::Ready(Ok(Some(failed)));
        }
        if progress.count() == handles.len() {
            return Poll::Ready(Ok(None));
        }
        progress.wake_on_next(cx.waker());
        waiting_on(Waiting::On("gather"));
        Poll::Pending
    })
    .await
}

fn take<T>(handle: &mut JoinHandle<T>) -> AioResult<T> {
    handle.take_result().expect("a finished task's result")
}

/// When [`wait`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    FirstCompleted,
    FirstException,
    AllCompleted,
}

/// What [`wait`] returns: indices into the handles given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waited {
    pub done: Vec<usize>,
    pub pending: Vec<usize>,
}

/// `asyncio.wait(tasks, timeout, return_when)`: returns (done, pending) without cancelling or
/// taking results; a timeout just returns what is done by then.
pub async fn wait<T>(
    handles: &[JoinHandle<T>],
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> AioResult<Waited> {
    let progress = WatchedTasks::watch(handles, false);
    let mut timer = timeout.map(sleep);
    poll_fn(|cx| {
        cancel_point()?;
        let all = progress.count() == handles.len();
        let finished = match return_when {
            ReturnWhen::FirstCompleted => progress.count() > 0 || all,
            ReturnWhen::FirstException => progress.first_failure().is_some() || all,
            ReturnWhen::AllCompleted => all,
        };
        let timed_out = timer.as_mut().is_some_and(|t| std::pin::Pin::new(t).poll(cx).is_ready());
        if finished || timed_out {
            let (done, pending) = (0..handles.len()).partition(|&i| handles[i].done());
            return Poll::Ready(Ok(Waited { done, pending }));
        }
        progress.wake_on_next(cx.waker());
        waiting_on(Waiting::On("wait"));
        Poll::Pending
    })
    .await
}

/// `asyncio.as_completed(tasks, timeout)`: each task's index and outcome in the order they
/// finish; after the timeout, `Err(TimedOut)`.
pub fn as_completed<T>(handles: Vec<JoinHandle<T>>, timeout: Option<Duration>) -> AsCompleted<T> {
    let progress = WatchedTasks::watch(&handles, true);
    AsCompleted { left: handles.len(), handles, progress, timer: timeout.map(sleep) }
}

/// The iterator of [`as_completed`]: `next().await` until `None`.
pub struct AsCompleted<T> {
    handles: Vec<JoinHandle<T>>,
    progress: Rc<WatchedTasks>,
    left: usize,
    timer: Option<super::executor::Sleep>,
}

impl<T> AsCompleted<T> {
    pub async fn next(&mut self) -> Option<AioResult<(usize, AioResult<T>)>> {
        poll_fn(|cx| {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            if let Err(cancelled) = cancel_point() {
                return Poll::Ready(Some(Err(cancelled)));
            }
            if let Some(index) = self.progress.next_finished() {
                self.left -= 1;
                return Poll::Ready(Some(Ok((index, take(&mut self.handles[index])))));
            }
            if self.timer.as_mut().is_some_and(|t| std::pin::Pin::new(t).poll(cx).is_ready()) {
                return Poll::Ready(Some(Err(AioError::TimedOut)));
            }
            self.progress.wake_on_next(cx.waker());
            waiting_on(Waiting::On("as_completed"));
            Poll::Pending
        })
        .await
    }
}

/// `asyncio.wait_for(future, timeout)` (and `async with asyncio.timeout(…)`): runs `future` as
/// a task; on timeout cancels it, waits until it has handled the cancellation, and raises
/// `TimedOut` — unless the task swallowed the cancellation and returned anyway.
pub async fn wait_for<T: 'static>(
    future: impl Future<Output = AioResult<T>> + 'static,
    timeout: Duration,
) -> AioResult<T> {
    let mut task = spawn(future);
    let mut timer = sleep(timeout);
    let timed_out = poll_fn(|cx| {
        if let Err(cancelled) = cancel_point() {
            task.cancel();
            return Poll::Ready(Err(cancelled));
        }
        if task.done() {
            return Poll::Ready(Ok(false));
        }
        if std::pin::Pin::new(&mut timer).poll(cx).is_ready() {
            return Poll::Ready(Ok(true));
        }
        task.on_done(cx.waker());
        waiting_on(Waiting::On("wait_for"));
        Poll::Pending
    })
    .await?;
    if timed_out {
        task.cancel();
        return match shielded(&mut task).await {
            Err(AioError::Cancelled) => Err(AioError::TimedOut),
            other => other,
        };
    }
    take(&mut task)
}

/// `asyncio.shield(future)`: runs `future` as a task that cancelling the awaiting task does not
/// cancel; the awaiting task gets `Cancelled`, the shielded one runs on.
pub async fn shield<T: 'static>(future: impl Future<Output = AioResult<T>> + 'static) -> AioResult<T> {
    let mut task = spawn(future);
    poll_fn(|cx| {
        cancel_point()?;
        if task.done() {
            return Poll::Ready(take(&mut task));
        }
        task.on_done(cx.waker());
        waiting_on(Waiting::Task(Join::Shield, task.task()));
        Poll::Pending
    })
    .await
}

/// Awaits `task` without being a cancellation point (for clean-up waits).
async fn shielded<T>(task: &mut JoinHandle<T>) -> AioResult<T> {
    poll_fn(|cx| {
        if task.done() {
            return Poll::Ready(take(task));
        }
        task.on_done(cx.waker());
        waiting_on(Waiting::Task(Join::Await, task.task()));
        Poll::Pending
    })
    .await
}
