-- A second index for search terms of 1-2 characters (a two-character Chinese word
-- such as 分数 is below the trigram length): each CJK/Hangul run is stored as its
-- overlapping bigrams plus its last character, separated by spaces, and indexed by
-- the unicode61 tokenizer. The column is computed by the application when a segment
-- is written (edge/speech/text.py: bigram_form).
ALTER TABLE speech_segments ADD COLUMN bigrams TEXT NOT NULL DEFAULT '';

CREATE VIRTUAL TABLE speech_fts_bigram USING fts5(
    bigrams, content='speech_segments', content_rowid='id', tokenize='unicode61'
);
CREATE TRIGGER speech_segments_bi_ai AFTER INSERT ON speech_segments BEGIN
    INSERT INTO speech_fts_bigram (rowid, bigrams) VALUES (new.id, new.bigrams);
END;
CREATE TRIGGER speech_segments_bi_ad AFTER DELETE ON speech_segments BEGIN
    INSERT INTO speech_fts_bigram (speech_fts_bigram, rowid, bigrams) VALUES ('delete', old.id, old.bigrams);
END;
CREATE TRIGGER speech_segments_bi_au AFTER UPDATE OF bigrams ON speech_segments BEGIN
    INSERT INTO speech_fts_bigram (speech_fts_bigram, rowid, bigrams) VALUES ('delete', old.id, old.bigrams);
    INSERT INTO speech_fts_bigram (rowid, bigrams) VALUES (new.id, new.bigrams);
END;
