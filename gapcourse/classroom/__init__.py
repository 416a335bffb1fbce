"""The instructor's tools: student copies of the notebooks (:mod:`.copies`), grading submitted
notebooks (:mod:`.grade`) and the Colab install cell (:mod:`.colab`). A learner never needs them."""
