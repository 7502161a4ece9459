//! `asyncio.TaskGroup` (Python 3.11): structured concurrency. The group's tasks finish before
//! the group does; the first task to fail cancels its siblings and the body, and the group
//! raises every failure together (`ExceptionGroup`).

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::Poll;

use super::executor::{cancel_point, current_task, spawn_task, waiting_on, JoinHandle, TaskRef, Waiting, WatchedTasks};
use super::{AioError, AioResult};

struct Group {
    /// The task running the body.
    parent: TaskRef,
    children: RefCell<Vec<TaskRef>>,
    /// How many children have finished.
    progress: Rc<WatchedTasks>,
    errors: RefCell<Vec<AioError>>,
    /// A failure has cancelled everything.
    aborting: Cell<bool>,
}

/// A handle to spawn tasks into a running group (`tg.create_task`).
#[derive(Clone)]
pub struct TaskGroup {
    group: Rc<Group>,
}

impl Group {
    /// Cancels every unfinished child and, once, the body's task.
    fn abort(&self) {
        if self.aborting.replace(true) {
            return;
        }
        for child in self.children.borrow().iter().filter(|child| !child.header().done.get()) {
            super::executor::cancel_header(child.header());
        }
        super::executor::cancel_header(self.parent.header());
    }

    fn fail(&self, error: AioError) {
        self.errors.borrow_mut().push(error);
        self.abort();
    }
}

impl TaskGroup {
    /// `async with asyncio.TaskGroup() as tg: body(tg)`: runs `body`, then waits for every task
    /// spawned into the group. If a task (or the body) fails, the rest are cancelled and the
    /// result is `Err(Group(failures))`; if the awaiting task is cancelled from outside, the
    /// tasks are cancelled and it is `Err(Cancelled)`.
    pub async fn run<T, Body>(body: impl FnOnce(TaskGroup) -> Body) -> AioResult<T>
    where
        Body: Future<Output = AioResult<T>>,
    {
        let parent = current_task().expect("a task group runs inside a task");
        let group = Rc::new(Group {
            parent,
            children: RefCell::default(),
            progress: Rc::default(),
            errors: RefCell::default(),
            aborting: Cell::new(false),
        });
        let outcome = body(TaskGroup { group: Rc::clone(&group) }).await;
        if let Err(error) = &outcome {
            match error {
                AioError::Cancelled => group.abort(),
                other => group.fail(other.clone()),
            }
        }
        // Wait for every child; cancellation requests now only cancel the children.
        poll_fn(|cx| {
            if cancel_point().is_err() {
                group.abort();
            }
            if group.progress.count() == group.children.borrow().len() {
                return Poll::Ready(());
            }
            group.progress.wake_on_next(cx.waker());
            waiting_on(Waiting::On("TaskGroup: its tasks"));
            Poll::Pending
        })
        .await;
        let errors = group.errors.take();
        if !errors.is_empty() {
            // The group's own cancel request of the body is spent (asyncio's `uncancel`).
            group.parent.header().cancel_pending.set(false);
            return Err(AioError::Group(errors));
        }
        outcome
    }

    /// `tg.create_task(future)`. A group that is already failing cancels the task at once.
    pub fn spawn<T: 'static>(&self, future: impl Future<Output = AioResult<T>> + 'static) -> JoinHandle<T> {
        self.spawn_task(None, future)
    }

    /// [`TaskGroup::spawn`] with a name.
    pub fn spawn_named<T: 'static>(
        &self,
        name: impl Into<String>,
        future: impl Future<Output = AioResult<T>> + 'static,
    ) -> JoinHandle<T> {
        self.spawn_task(Some(name.into()), future)
    }

    fn spawn_task<T: 'static>(
        &self,
        name: Option<String>,
        future: impl Future<Output = AioResult<T>> + 'static,
    ) -> JoinHandle<T> {
        let group = Rc::clone(&self.group);
        let handle = spawn_task(name, async move {
            let outcome = future.await;
            if let Err(error) = &outcome {
                if *error != AioError::Cancelled {
                    group.fail(error.clone());
                }
            }
            outcome
        });
        let index = self.group.children.borrow().len();
        self.group.progress.add(index, handle.header());
        self.group.children.borrow_mut().push(handle.task());
        if self.group.aborting.get() {
            handle.cancel();
        }
        handle
    }
}
