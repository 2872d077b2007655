"""The memory service: memory modes, durable memory, recall, memory context, transcripts."""
