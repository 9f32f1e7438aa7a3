"""Training a flow: the run's settings, its objective, the trainer, its metrics and its checkpoints.

================  ==========================================================================
``config``        :class:`~cnfviz.training.config.TrainConfig`, a whole reproducible run
``fields``        the one table of settings every channel (CLI, links, sidebar, Compare) derives from
``objectives``    maximum likelihood and (OT) flow matching
``trainer``       :class:`~cnfviz.training.trainer.Trainer` and :func:`~cnfviz.training.trainer.train`
``metrics``       test NLL, sampling cost and the distance to the true density
``checkpoint``    save and load a trained model with its config
``presets``       named starting configs (the seed tutorial, fast defaults per target)
``device``        which torch device a run uses
================  ==========================================================================
"""

__all__: list[str] = []
