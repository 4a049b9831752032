"""The demo classroom: a roster, a teacher, and the sample content later capabilities add."""
