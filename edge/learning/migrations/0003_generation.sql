-- A counter every change to what a mastery update reads moves (edge/learning/pending.py).
-- The answer writer works out a batch of queued updates outside the hub's write lock, from
-- one read of these tables, and writes it under the lock only if the counter is where it
-- was when it read; otherwise it works the batch out again under the lock. Triggers keep
-- it, so no code path that writes these tables can forget to. Answers joining the queue
-- (inserts into learning_pending) do not move it; rows leaving it do.
CREATE TABLE learning_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO learning_generation (id, n) VALUES (1, 0);

CREATE TRIGGER learning_knowledge_points_gen_insert AFTER INSERT ON learning_knowledge_points BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_knowledge_points_gen_update AFTER UPDATE ON learning_knowledge_points BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_knowledge_points_gen_delete AFTER DELETE ON learning_knowledge_points BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_items_gen_insert AFTER INSERT ON learning_items BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_items_gen_update AFTER UPDATE ON learning_items BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_items_gen_delete AFTER DELETE ON learning_items BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_item_kps_gen_insert AFTER INSERT ON learning_item_kps BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_item_kps_gen_update AFTER UPDATE ON learning_item_kps BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_item_kps_gen_delete AFTER DELETE ON learning_item_kps BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_answers_gen_insert AFTER INSERT ON learning_answers BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_answers_gen_update AFTER UPDATE ON learning_answers BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_answers_gen_delete AFTER DELETE ON learning_answers BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_item_progress_gen_insert AFTER INSERT ON learning_item_progress BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_item_progress_gen_update AFTER UPDATE ON learning_item_progress BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_item_progress_gen_delete AFTER DELETE ON learning_item_progress BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_state_gen_insert AFTER INSERT ON learning_state BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_state_gen_update AFTER UPDATE ON learning_state BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_state_gen_delete AFTER DELETE ON learning_state BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_bkt_gen_insert AFTER INSERT ON learning_bkt BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_bkt_gen_update AFTER UPDATE ON learning_bkt BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_bkt_gen_delete AFTER DELETE ON learning_bkt BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_model_gen_insert AFTER INSERT ON learning_model BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_model_gen_update AFTER UPDATE ON learning_model BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_model_gen_delete AFTER DELETE ON learning_model BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER learning_pending_gen_delete AFTER DELETE ON learning_pending BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER students_gen_insert AFTER INSERT ON students BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER students_gen_delete AFTER DELETE ON students BEGIN UPDATE learning_generation SET n = n + 1 WHERE id = 1; END;
