"""Personalised learning: mastery per knowledge point, tiered exercises per student.

Interfaces for other capabilities (they never touch this package's tables):
- ``service.register_items(db, items)``: the quiz bank and lesson packages list
  the exercises the recommender may choose from;
- ``service.record_answer(db, student_id, item_id, knowledge_points, correct, at)``:
  the quiz calls it inside its grading transaction;
- ``graph.import_graph(db, points, source)``: lesson packages and district data.
"""
