"""The autoscaler runs after each poll: poll_group sends the autoscale task, on the "poll" queue that the
poll worker of the run command (`-Q poll`) serves."""

from celery import current_app

from domains import poller, tasks
from domains.poller import PollReport


def test_poll_group_sends_the_autoscaler_after_the_poll(monkeypatch):
    order = []
    monkeypatch.setattr(poller, "poll_fleet", lambda group: order.append(("poll", group)) or PollReport())
    monkeypatch.setattr(current_app, "send_task", lambda name, *a, **kw: order.append(("send", name)))
    tasks.poll_group.run("")
    assert order == [("poll", ""), ("send", "domains.autoscaler.tasks.autoscale")]


def test_the_autoscale_task_goes_to_the_poll_queue():
    route = current_app.amqp.router.route({}, "domains.autoscaler.tasks.autoscale")
    assert route["queue"].name == "poll"
