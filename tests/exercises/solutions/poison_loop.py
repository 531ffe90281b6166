"""Reference solution: reject what can never be parsed; apply and ack the rest."""

from labkit.transport.brokers import BadMessage


async def handle(delivery, inventory):
    try:
        order = delivery.message.json()
    except BadMessage:
        await delivery.reject("not JSON")  # it will never parse: dead-letter it, do not requeue
        return
    inventory.apply(delivery.message.id, order["items"], idempotent=True)
    await delivery.ack()
