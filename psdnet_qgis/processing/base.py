"""``PSDNetAlgorithm``: what every ``psdnet:`` algorithm shares (identity, help, stable enums).

QGIS core's ``QgisAlgorithm`` pattern: the translation context, icon, group and
``createInstance`` live here once; subclasses hold parameters and the run.

Enum parameters use static strings: the value a saved model, a script or ``qgis_process``
stores is a stable id ("auto", "psdnet_vhr4", "gsa"), not a position that shifts when a
bundled model or a method is added. QGIS 3.40 rejects an integer for such an enum, so
``checkParameterValues`` maps a position (``"MODEL": 0``, ``METHOD=1``) to its id first:
calls written against the index-based parameters keep working. QGIS shows the option strings
themselves in the combo box, and they must not be translated (a translated id would make a
saved model depend on the user's language), so each choice also carries a translated label,
shown in the parameter's tooltip and listed in the algorithm's help.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.registry import list_models
from .icons import icon

#: translation context of every string of the plugin; QT_TRANSLATE_NOOP markers spell it as a
#: literal, since translation extractors read the context from the source text
CONTEXT = "psdnet"


def tr(text: str) -> str:
    """``text`` translated in the plugin's context (identity when no translation is installed)."""
    return QCoreApplication.translate(CONTEXT, text)


def enum_index(value: Any) -> int | None:
    """The position ``value`` names when it is an integer or a string of digits, else None.

    Strings of digits count because ``qgis_process`` and saved batch files pass every value as
    text (``METHOD=0``); no option id is all digits.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class PSDNetAlgorithm(QgsProcessingAlgorithm):
    """Base of ``psdnet:pansharpen``, ``psdnet:classical`` and ``psdnet:assess``.

    Subclasses implement ``name``, ``displayName``, ``initAlgorithm``, ``processAlgorithm``
    and ``helpText``; they add enum parameters with ``addChoiceParameter`` and read them
    with ``choiceId``.
    """

    #: Names of the PAN layer, its band and the MS layer parameters (every algorithm has them).
    PAN = "PAN"
    PAN_BAND = "PAN_BAND"
    MS = "MS"

    def __init__(self) -> None:
        super().__init__()
        #: parameter name -> ((id, translated label), ...), listed by shortHelpString
        self._choices: dict[str, tuple[tuple[str, str], ...]] = {}

    # -- identity ---------------------------------------------------------------------------
    def tr(self, text: str) -> str:
        return tr(text)

    def createInstance(self) -> PSDNetAlgorithm:
        return type(self)()

    def addPanMsParameters(self) -> None:
        """The PAN layer, its band (for multiband PAN files) and the MS layer, as every fusion has them."""
        self.addParameter(QgsProcessingParameterRasterLayer(self.PAN, self.tr("Panchromatic (PAN) layer")))
        self.addParameter(QgsProcessingParameterBand(
            self.PAN_BAND, self.tr("PAN band (needed only when the PAN layer has several bands)"), None, self.PAN,
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(self.MS, self.tr("Multispectral (MS) layer")))

    def bundledModelChoices(self) -> list[tuple[str, str]]:
        """``(name, label)`` of every bundled model, in the registry's order (a MODEL choice list)."""
        return [(m.name, self.tr("{}, ratio {}").format(", ".join(m.band_names), m.ratio)) for m in list_models()]

    def icon(self) -> QIcon:
        return icon()

    def group(self) -> str:
        # One provider, three algorithms: a group level would only add a click in the toolbox.
        return ""

    def groupId(self) -> str:
        return ""

    # -- help -------------------------------------------------------------------------------
    def helpText(self) -> str:
        """The algorithm's own help, translated HTML; the choice lists are appended to it."""
        return ""

    def shortHelpString(self) -> str:
        """``helpText`` followed by the ids every choice parameter accepts and what each means.

        The combo box shows the ids, and scripts and ``qgis_process`` type them, so the help
        panel is where their meaning has to be.
        """
        parts = [self.helpText()]
        for definition in self.parameterDefinitions():
            choices = self._choices.get(definition.name())
            if choices:
                items = "".join(
                    f"<li><b>{escape(cid)}</b>: {label}</li>" for cid, label in choices)
                parts.append(self.tr("<p><b>{}</b> ({}), accepted values:<ul>{}</ul></p>").format(
                    escape(definition.description()), definition.name(), items))
        return "".join(parts)

    # -- choice (static-string enum) parameters -----------------------------------------------
    def addChoiceParameter(
        self, name: str, description: str, choices: Sequence[tuple[str, str]], default: str,
        *, advanced: bool = False,
    ) -> QgsProcessingParameterEnum:
        """Adds a single-choice enum whose values are the ids in ``choices``.

        Args:
            name: the parameter name (``MODEL``).
            description: translated label of the parameter.
            choices: ``(id, translated label)`` pairs; position ``i`` is what an index-based
                call (``"MODEL": i``) selects.
            default: the id used when the parameter is not given.
            advanced: show it under "Advanced parameters".

        Returns:
            The parameter, already added to the algorithm.
        """
        choices = tuple(choices)
        ids = [cid for cid, _ in choices]
        param = QgsProcessingParameterEnum(name, description, ids, allowMultiple=False,
                                           defaultValue=default, usesStaticStrings=True)
        # Plain text: the dialog shows it in the tooltip, qgis_process help prints it as is.
        param.setHelp("; ".join(f"{cid}: {label}" for cid, label in choices))
        if advanced:
            param.setFlags(param.flags() | Qgis.ProcessingParameterFlag.Advanced)
        self.addParameter(param)
        self._choices[name] = choices
        return param

    def choiceId(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str:
        """The id chosen in the choice parameter ``name`` (its default when unset).

        A position (from an index-based call) gives the id at that position; values are
        validated by ``checkParameterValues`` before a run.
        """
        definition = self.parameterDefinition(name)
        index = enum_index(parameters.get(name))
        if index is not None and 0 <= index < len(definition.options()):
            return definition.options()[index]
        return self.parameterAsEnumString(parameters, name, context)

    def _resolve_choice(self, definition: QgsProcessingParameterEnum, value: Any) -> tuple[str | None, str | None]:
        """(id, None) for a valid choice ``value``, (None, message) for an invalid one."""
        ids = definition.options()
        index = enum_index(value)
        if index is not None:
            if 0 <= index < len(ids):
                return ids[index], None
            return None, self.tr("{} ({}): there is no option {}. Use one of: {}.").format(
                definition.description(), definition.name(), index, ", ".join(ids))
        if isinstance(value, str) and value not in ids:
            return None, self.tr("{} ({}): unknown value '{}'. Use one of: {}.").format(
                definition.description(), definition.name(), value, ", ".join(ids))
        return value, None

    def checkParameterValues(self, parameters, context):
        """Rejects unknown choice ids with the valid ones, maps positions to ids, then QGIS's checks."""
        resolved = dict(parameters)
        for definition in self.parameterDefinitions():
            if not (isinstance(definition, QgsProcessingParameterEnum) and definition.usesStaticStrings()):
                continue
            value = parameters.get(definition.name())
            if value is None or value == "":
                continue
            choice, problem = self._resolve_choice(definition, value)
            if problem:
                return False, problem
            resolved[definition.name()] = choice
        return super().checkParameterValues(resolved, context)
