"""Personalised learning: mastery per knowledge point, tiered exercises per student.

Interfaces for other capabilities (they never touch this package's tables):
- ``service.register_items(db, items)``: the quiz bank and lesson packages list
  the exercises the recommender may choose from;
- ``service.record_answers(db, answers)`` (and ``record_answer`` for one): the quiz calls
  it once per group commit of graded answers, inside that transaction;
- ``graph.import_graph(db, points, source)``: lesson packages and district data.
"""
