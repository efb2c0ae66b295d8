"""The three things a conversation does with one inbox entry, one module each.

- ``customer_message``: a WhatsApp user's message → Genesys (``wa.message``);
- ``status``: a Meta status of an agent's message → a Genesys receipt (``wa.status``);
- ``agent_message``: a Genesys agent's message, attachments too → WhatsApp (``gc.message``).

Each flow is a plain function of a :class:`~interlink.actors.flows.common.FlowContext`, the
conversation's store and the entry; it raises what went wrong and leaves retrying, ordering and
dead letters to the conversation actor.
"""
