"""Personal names for the ``name`` detector of :mod:`mlmon.governance.deid`.

Frequent given names and surnames of many languages (English, Spanish, Portuguese,
French, German, Dutch, Italian, Nordic, Polish, Irish, Nigerian, Indian, Arabic,
Chinese, Vietnamese, Korean, Japanese, Turkish, Greek). Left out on purpose: words
that are also common English words, clinical terms or brand names (May, June, Will,
Mark, Grace, Hope, Max, Nova, Ward, Brown, White, Young, King, Hill, Dell, Siemens,
Mercedes...), so a kept device name or a short clinical fragment is not taken for a
name. A name outside the lists, with no title or label, is not found (see the limits
in ``docs/samples.md``).
"""

from __future__ import annotations

GIVEN_TEXT = """
aaron abdul abdullah abigail adam adebayo adeola adrian agnieszka ahmad ahmed aidan aiko aisha
akira alan albert alejandra alejandro aleksandra alessandra alessandro alex alexander alexandra
alexis alfonso ali alice alicia alina amanda amar amelia amina amir amit amy ana anastasia
andrea andreas andrei andrew andrzej angela angelika anita anja ann anna anne annika anthony
antoine antonio anya arjun arnaud arthur aryan ashley astrid aurelie ayesha barbara bartosz
beatriz benedikt benjamin bernard bernd bettina betty bianca bjorn brandon brenda brian bridget
bruno camille carla carlos carmen carol caroline carolyn catherine cecile charles charlotte
chen chidi chiara chinedu chioma christian christina christine christoph christopher cian
ciaran claire claudia clement cristina daniel daniela danielle daria david deborah deepak
dennis diana diego dieter dimitri dimitrios dmitri dolores dominik donald donna dorothy
douglas dries dylan edward elena eleni elif elisa elisabeth elizabeth ellen emeka emily emma
emmanuel enrique eric erik erika esther eva fabian fabienne fatima fatma federica felipe
felix fernando fiona florian francesca francesco francisco francois franziska frederik
gabriel gabriela gabriele georg george georgios gerhard giacomo gianluca giorgia giorgos
giovanni giulia giuseppe gonzalo greta guillaume gunther gustavo hana hannah hans harold
harpreet hassan heather heike heinz helen helena hendrik henrik henry hiroshi hugo ibrahim
ifeoma ignacio ines ingrid irene isabel isabella isabelle ivan jacob jacqueline jakub james
 jana jane janet janina jason javier jean jeanne jennifer jens jeroen jessica jiang jin
joanna joao joaquin johan johanna johannes john jonas jonathan jorge jose josef joseph joshua
joyce juan judith julia julian julie julien jurgen justin kamal karen karin karl katarzyna
katharina katherine kathleen kenji kenneth kevin khalid kimberly klaus krishna krzysztof
kwame lars laura laurent lea leila lena leon leonardo liam linda lisa lorenzo lucas lucia
luciana lucie luis luisa lukas lukasz madeleine magdalena mahmoud manuel marco marcus
margaret margarita maria mariana marie marina mario marta martha martin mary mateo matteo
matthew matthias maximilian mehmet mei melissa mia michael michel michelle miguel mikael
mohamed mohammad mohammed monika muhammad mustafa nadia nanami natalia nathalie nicholas
nicolas nicole niklas nikolai nikolaos nina noah noemi nomvula obinna oksana olga olivia
oluwaseun omar oscar oskar pablo pamela paolo patricia patrick paul paula pedro pekka
peter petra philippe pierre pietro piotr pooja priya rachel rafael rahul raj rajesh ramon
raphael raymond rebecca renate ricardo richard robert roberto rodrigo rohan ronald rosa
ruth ryan sabine sabrina sakura salma samir samuel sandra sanjay santiago sara sarah saoirse
sean sebastian sergei sergio shira shreya silvia simon simone siobhan sofia sophia
sophie stefan stefano stephanie stephen steven sunita susan susanne sven takeshi tamara
tanja teresa thomas timothy tobias tomasz ursula valentina valeria vanessa veronica
victor victoria vikram vincent vincenzo walter wei wojciech wolfgang xavier xin yan yasmin
pieter joost sander bram sanne femke lotte anouk daan thijs ruben maarten wouter niels
yara yusuf yuki yusuke zainab zanele zhang zoe zofia
"""

SURNAME_TEXT = """
abubakar adeyemi agarwal ahmed akhtar alvarez anderson andersson antonopoulos bakker
banerjee barbieri becker bernard bertrand bianchi bjork bonnet brouwer bruno castillo
chakraborty chatterjee chaudhry chen chowdhury colombo conti costa cruz dasgupta debroy
dejong delgado devries diaz dimitriou dubois dupont durand eze fernandes fernandez ferrari
fischer fontana fournier galli garcia gomez gonzalez gupta gutierrez haddad hansen hernandez
herrera hoffmann horvath huang hussain ibrahim iyer jansen janssen jimenez johansson johnson
jovanovic kamau kaminski kapoor kaur kelly kennedy khan kim klein koch kowalczyk kowalski
kozlov kumar kuznetsov lambert larsen laurent lefebvre lehmann leroy lewandowski lindqvist
liu lombardi lopez lorenzo mahlangu martinez meier mendoza menon meyer mohamed molina
morales moreau moreno muller murphy mwangi nakamura naidoo nair nguyen nielsen novak
novakova nowak obi odhiambo oduya ogunleye okafor okonkwo okoro olsen oyelaran ozturk
papadopoulos patel pereira perez petersen petrov phan popescu popov rahman ramirez rao
reddy ricci richter rizzo rodriguez romano romero rossi russo sanchez santos sato schmidt
schneider schreiber schulz schwarz sharma shevchenko silva singh sokolov suzuki takahashi
tanaka thompson tran ueda vandenberg vandijk vargas vasquez verma visser wagner walsh
wang weber williams wojcik wong wu yadav yamamoto yilmaz yusuf zhang zhao zhou zimmermann
smith jones taylor davies evans wilson thomas roberts robinson walker wright thompson
jackson harris clarke lewis mitchell turner phillips parker edwards collins stewart morris
murray campbell morgan cooper richardson howard rogers reed watson brooks sanders
bennett james hughes foster sullivan russell ortiz jenkins perry powell butler barnes
fisher henderson coleman simmons patterson jordan reynolds hamilton graham wallace gibson
vries jong boer mulder dekker dijkstra hendriks smit meijer leeuwen vos
mcdonald mckenzie obrien oconnor doyle byrne ryan brennan gallagher kavanagh
"""

#: Lower-case given names and surnames, accents folded (``müller`` -> ``muller``).
GIVEN_NAMES: frozenset[str] = frozenset(GIVEN_TEXT.split())
SURNAMES: frozenset[str] = frozenset(SURNAME_TEXT.split())
