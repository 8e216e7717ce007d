"""The pure core: messages, configuration, decision math, codecs and policies. No I/O."""
